"""Every stage-1 loss through ``hiercon train`` on the GoEmotions benchmark split.

Each run is the console command a user types (``benchmarks/configs/goemotions_losses.yaml`` with
``--stage1.loss NAME``); the table reads the run's own scores: the 28-emotion macro-F1
(the headline), the Ekman and sentiment macro-F1, micro-F1 and mAP, and the stage-1 kNN scores of
the test embeddings per taxonomy level with their mean pairwise cosine (near 1: collapsed), from the
run's ``results.json``.

    python benchmarks/recipe_losses.py                      # every loss, about 5 min each on 2 CPU cores
    python benchmarks/recipe_losses.py --losses supcon himulcone --seeds 1 2 3
    python benchmarks/recipe_losses.py --losses untrained   # no stage 1: the plain encoder, then stage 2
    python benchmarks/recipe_losses.py --table              # only print the table of finished runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CONFIG = BENCH_DIR / "configs" / "goemotions_losses.yaml"
RESULTS = BENCH_DIR / "results" / "recipe_losses"
OUTPUTS = REPO / "outputs" / "bench-losses"

sys.path.insert(0, str(REPO / "src"))
from hiercon.metrics.report import markdown_table  # noqa: E402
from hiercon.recipe.loss_registry import LOSSES  # noqa: E402

#: A run without stage 1 (``--stage1.skip true``): the untrained encoder's kNN scores, and stage 2 alone.
UNTRAINED = "untrained"
COLUMNS = {
    "macro-F1 (28 emotions)": "macro_f1",
    "Ekman macro-F1": "level_ekman/macro_f1",
    "sentiment macro-F1": "level_sentiment/macro_f1",
    "micro-F1": "micro_f1",
    "mAP": "map",
    "kNN sentiment": "stage1_level_0_micro_f1",
    "kNN Ekman": "stage1_level_1_micro_f1",
    "kNN emotion": "stage1_level_2_micro_f1",
    "mean cosine": "stage1_mean_pairwise_cosine",
}


def run_name(loss: str, seed: int) -> str:
    return f"{loss}_seed{seed}"


def run(loss: str, seed: int, extra: list[str]) -> dict:
    """One ``hiercon train`` run; its metrics, settings and wall time, saved as JSON."""
    name = run_name(loss, seed)
    output = OUTPUTS / name
    stage1 = ["--stage1.skip", "true"] if loss == UNTRAINED else ["--stage1.loss", loss]
    command = [
        str(Path(sys.executable).with_name("hiercon")), "train", str(CONFIG),
        *stage1, "--output.seed", str(seed), "--output.output_dir", str(output), *extra,
    ]
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(output.with_name(output.name + "-work"), ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    results = json.loads((output / "results.json").read_text())
    metrics = {**results["test"], **results["stage1"]}
    record = {"loss": loss, "seed": seed, "seconds": seconds, "command": " ".join(command[1:]), "metrics": metrics}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def table() -> str:
    rows = []
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text())
        metrics = record["metrics"]
        values = [metrics.get(key) for key in COLUMNS.values()]
        cells = ["–" if value is None else f"{value:.3f}" for value in values]
        rows.append([record["loss"], str(record["seed"]), *cells, f"{record['seconds']:.0f}"])
    return markdown_table(["loss", "seed", *COLUMNS, "time (s)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--losses", nargs="+", default=sorted(LOSSES), choices=[*sorted(LOSSES), UNTRAINED])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--table", action="store_true", help="print the table of finished runs and stop")
    options, extra = parser.parse_known_args()
    if not options.table:
        for loss in options.losses:
            for seed in options.seeds:
                run(loss, seed, extra)
                print(table(), flush=True)
    print(table())


if __name__ == "__main__":
    main()
