"""The two-stage recipe: contrastive stage 1, classifier stage 2, thresholds, evaluation, card, folder.

    python recipes/two_stage.py configs/goemotions_demo.yaml [--section.key value | section.key=value ...]
    torchrun --nproc_per_node 2 recipes/two_stage.py configs/goemotions.yaml
    accelerate launch --config_file configs/accelerate/ddp.yaml recipes/two_stage.py configs/goemotions.yaml

Rerun the same command to resume an interrupted run from its last checkpoint.
"""

import sys

from hiercon.recipe import main

if __name__ == "__main__":
    sys.exit(main(prog="two_stage.py"))
