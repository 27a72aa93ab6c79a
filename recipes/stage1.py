"""Stage 1 alone: contrastive training of the encoder, saved in <work_dir>/stage1/final.

    python recipes/stage1.py configs/goemotions.yaml [--section.key value ...]

Then `python recipes/stage2.py` with the same config continues from it.
"""

import sys

from hiercon.recipe import main

if __name__ == "__main__":
    sys.exit(main(stages="stage1", prog="stage1.py"))
