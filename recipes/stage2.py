"""Stage 2 onwards, from the encoder that recipes/stage1.py saved for the same config: classifier,
thresholds, evaluation, card, final folder, optional push and baseline.

    python recipes/stage2.py configs/goemotions.yaml [--section.key value ...]
"""

import sys

from hiercon.recipe import main

if __name__ == "__main__":
    sys.exit(main(stages="stage2", prog="stage2.py"))
