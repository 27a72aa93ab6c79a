"""Run every benchmark, or their ``--quick`` modes, and print the tables.

    python benchmarks/run_all.py --quick     # tiny models and subsets, about a minute (make bench)
    python benchmarks/run_all.py             # the full runs behind benchmarks/RESULTS.md (hours on 2 CPU cores)

The full mode runs the methods in priority order, one process each, so that an interrupted run
keeps the results already written to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from common import RESULTS_DIR  # noqa: E402

PROBE = ["--stage2", "probe", "--lr", "2e-4"]
GOEMOTIONS_RUNS: list[list[str]] = [
    *(["--method", baseline, "--lr", lr] for baseline in ("bce", "setfit") for lr in ("5e-5", "2e-4")),
    ["--method", "supcon", "--lr", "2e-4", "--temperature", "0.1"],
    ["--method", "probe"],
    ["--method", "supcon", *PROBE, "--temperature", "0.1"],
    ["--method", "supcon", *PROBE, "--temperature", "0.05"],
    ["--method", "supcon", "--stage2", "probe", "--lr", "5e-5", "--temperature", "0.1"],
    ["--method", "himulcone", *PROBE, "--temperature", "0.1"],
    *(["--method", method, *PROBE, "--temperature", "0.05"]
      for method in ("himulcone", "jaccard", "mulsupcon", "reg", "clinfonce", "ranked")),
]
FASHION_RUNS: list[list[str]] = [
    ["--method", method, "--lr", lr] for method in ("ce", "supcon", "himulcone") for lr in ("1e-3", "3e-4")
]


def run(script: str, arguments: list[str]) -> None:
    command = [sys.executable, str(BENCH_DIR / script), *arguments]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def run_quick(results_dir: Path) -> None:
    """Every script's quick mode, in this process (one import of torch and transformers)."""
    import fashion_mnist_quality
    import goemotions_quality
    import speed

    where = ["--results-dir", str(results_dir)]
    for method in ("bce", "supcon", "himulcone"):
        goemotions_quality.main(["--method", method, "--quick", *where])
    print(goemotions_quality.report(results_dir, quick=True))
    fashion_dir = fashion_mnist_quality.parse_args(["--report"]).data_dir
    if fashion_dir.is_dir():
        for method in ("ce", "himulcone"):
            fashion_mnist_quality.main(["--method", method, "--quick", *where])
        print(fashion_mnist_quality.report(results_dir, quick=True))
    else:
        print(f"Fashion-MNIST skipped: {fashion_dir} is absent (set HIERCON_SHARED_DATA)")
    speed.main(["--quick", *where])


def run_full(results_dir: Path) -> None:
    where = ["--results-dir", str(results_dir)]
    for arguments in GOEMOTIONS_RUNS:
        run("goemotions_quality.py", [*arguments, *where])
    for arguments in FASHION_RUNS:
        run("fashion_mnist_quality.py", [*arguments, *where])
    run("speed.py", where)
    run("goemotions_quality.py", ["--report", *where])
    run("fashion_mnist_quality.py", ["--report", *where])


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
