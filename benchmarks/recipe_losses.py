"""Every stage-1 loss through ``hiercon train``, on the GoEmotions or the Fashion-MNIST benchmark split.

Each run is ``hiercon train CONFIG --stage1.loss NAME`` (the loss's recommended temperature, views
and learning rate come from ``hiercon.recipe.loss_registry`` unless the config sets them), recorded by
``benchmarks/recipe_runs.py`` under the loss's name; ``untrained`` is ``--stage1.skip true``, the plain
encoder followed by stage 2 (the kNN scores of the encoder before any contrastive training).

    python benchmarks/recipe_losses.py                      # every loss, about 5 min each on 2 CPU cores
    python benchmarks/recipe_losses.py --losses supcon himulcone --seeds 1 2 3
    python benchmarks/recipe_losses.py --losses untrained   # no stage 1: the plain encoder, then stage 2
    python benchmarks/recipe_losses.py --config benchmarks/configs/fashion_mnist_losses.yaml \\
        --losses untrained supcon himulcone --seeds 1 2 3   # after benchmarks/prepare_fashion_mnist.py
    python benchmarks/recipe_losses.py --table              # only print the table of finished runs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recipe_runs import BENCH_DIR, REPO, run, table

sys.path.insert(0, str(REPO / "src"))
from hiercon.recipe.loss_registry import LOSSES  # noqa: E402

CONFIG = BENCH_DIR / "configs" / "goemotions_losses.yaml"
#: A run without stage 1 (``--stage1.skip true``): the untrained encoder's kNN scores, and stage 2 alone.
UNTRAINED = "untrained"


def loss_overrides(loss: str) -> list[str]:
    return ["--stage1.skip", "true"] if loss == UNTRAINED else ["--stage1.loss", loss]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--losses", nargs="+", default=sorted(LOSSES), choices=[*sorted(LOSSES), UNTRAINED])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--table", action="store_true", help="print the table of finished runs and stop")
    options, extra = parser.parse_known_args()
    if not options.table:
        for loss in options.losses:
            for seed in options.seeds:
                run(options.config, loss, seed, [*loss_overrides(loss), *extra])
                print(table(options.config), flush=True)
    print(table(options.config))


if __name__ == "__main__":
    main()
