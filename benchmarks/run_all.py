"""Run every benchmark, or their ``--quick`` modes, and print the tables.

    python benchmarks/run_all.py --quick     # tiny models and sizes, a few minutes (make bench)
    python benchmarks/run_all.py             # the full runs behind benchmarks/RESULTS.md (hours on 2 CPU cores)

The benchmarks: every stage-1 loss through ``hiercon train`` (``recipe_losses.py``), the step time
and inference speed (``speed.py``), the losses alone (``losses.py``), taxonomy size
(``taxonomy_scale.py``) and GradCache batches (``cached.py``). The recipe runs have no quick mode:
``--quick`` prints the table of their saved records (``benchmarks/results/recipe_runs/``) instead of
training. The full mode runs one process per script, so that an interrupted run keeps the results
already written; the recipe runs always write their records under ``benchmarks/results/recipe_runs/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from common import RESULTS_DIR  # noqa: E402


def run(script: str, arguments: list[str]) -> None:
    command = [sys.executable, str(BENCH_DIR / script), *arguments]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def full_runs(results_dir: Path) -> list[tuple[str, list[str]]]:
    """(script, arguments) of every full run, in order."""
    from recipe_losses import UNTRAINED

    from hiercon.recipe.loss_registry import LOSSES

    where = ["--results-dir", str(results_dir)]
    return [
        ("recipe_losses.py", ["--losses", UNTRAINED, *sorted(LOSSES)]),
        ("speed.py", where),
        ("losses.py", ["--markdown", str(results_dir / "losses.md")]),
        ("taxonomy_scale.py", []),
        ("cached.py", where),
    ]


def run_quick(results_dir: Path) -> None:
    """Every script's quick mode, in this process (one import of torch and transformers)."""
    import cached
    import losses
    import recipe_losses
    import speed
    import taxonomy_scale
    from recipe_runs import table

    where = ["--results-dir", str(results_dir)]
    print(f"Recipe runs of {recipe_losses.CONFIG.name} (saved records):\n{table(recipe_losses.CONFIG)}", flush=True)
    speed.main(["--quick", *where])
    losses.main(["--quick", "--markdown", str(results_dir / "losses_quick.md")])
    taxonomy_scale.main(["--quick"])
    cached.main(["--quick", *where])


def run_full(results_dir: Path) -> None:
    for script, arguments in full_runs(results_dir):
        run(script, arguments)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    if args.quick:
        run_quick(args.results_dir)
    else:
        run_full(args.results_dir)


if __name__ == "__main__":
    main()
