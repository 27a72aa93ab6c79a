"""Benchmark runs through ``hiercon train``: one config, named variants of its settings, several seeds.

Each run is the console command a user types, ``hiercon train CONFIG --section.key value ...``; its
record (the command, wall time and the scores of the run's own ``results.json``) is saved as
``benchmarks/results/recipe_runs/<config>/<variant>_seed<seed>.json``. The table reads those
records: the fine-label macro-F1 (the headline), micro-F1 and mAP, the macro-F1 of each coarser
taxonomy level, the stage-1 kNN scores of the test embeddings per level with their mean pairwise
cosine (near 1: collapsed), the training time (stage 1 and stage 2, from the run's ``results.json``)
and the whole command's wall time (evaluation included); with several seeds, mean ± standard deviation.
A run with ``--output.compare_baseline true`` also records its BCE baseline as ``<variant>_baseline``
(the time is the whole run's).

    python benchmarks/recipe_runs.py benchmarks/configs/goemotions_losses.yaml --name reg_head \\
        --seeds 1 2 3 -- --stage1.loss reg --stage2.mode head
    python benchmarks/recipe_runs.py benchmarks/configs/goemotions_losses.yaml --table
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "recipe_runs"
OUTPUTS = REPO / "outputs" / "bench-runs"

sys.path.insert(0, str(REPO / "src"))
from hiercon.metrics.report import markdown_table  # noqa: E402


def results_dir(config: Path) -> Path:
    return RESULTS / Path(config).stem


def run(config: Path, name: str, seed: int, overrides: Sequence[str]) -> dict:
    """One ``hiercon train`` run; its scores, settings and wall time, saved as JSON."""
    output = OUTPUTS / Path(config).stem / f"{name}_seed{seed}"
    command = [
        str(Path(sys.executable).with_name("hiercon")), "train", str(config),
        "--output.seed", str(seed), "--output.output_dir", str(output), *overrides,
    ]
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(output.with_name(output.name + "-work"), ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    results = json.loads((output / "results.json").read_text())
    training = results.get("training_seconds", {})
    record = {
        "name": name, "seed": seed, "seconds": seconds, "overrides": list(overrides),
        "training_seconds": training.get("stage1", 0.0) + training.get("stage2", 0.0),
        "command": " ".join(["hiercon", *command[1:]]).replace(str(REPO) + "/", ""),
        "metrics": {**results["test"], **results.get("stage1", {}), **dev_scores(results)},
    }
    save(config, record)
    if results.get("baseline"):  # output.compare_baseline: the BCE fine-tune on the same budget, same run
        save(config, {**record, "name": f"{name}_baseline", "metrics": results["baseline"],
                      "training_seconds": training.get("baseline")})
    return record


def dev_scores(results: dict) -> dict[str, float]:
    """The validation macro-F1 (the split thresholds are tuned on), which picks the defaults."""
    validation = results.get("validation") or {}
    return {"dev/macro_f1": validation["macro_f1"]} if "macro_f1" in validation else {}


def save(config: Path, record: dict) -> None:
    folder = results_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['name']}_seed{record['seed']}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def read_records(config: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(results_dir(config).glob("*_seed*.json"))]


def columns(records: Sequence[dict]) -> dict[str, str]:
    """Table column -> metric key: the headline first, then levels (coarse to fine) and kNN scores."""
    keys = [key for record in records for key in record["metrics"]]
    levels = list(dict.fromkeys(key[len("level_"):-len("/macro_f1")] for key in keys
                                if key.startswith("level_") and key.endswith("/macro_f1")))
    knn = sorted({key for key in keys  # multi-label levels report kNN micro-F1, single-label ones accuracy
                  if key.startswith("stage1_level_") and key.endswith(("_micro_f1", "_accuracy"))})
    chosen = {"macro-F1 (fine labels)": "macro_f1", "micro-F1": "micro_f1", "mAP": "map"}
    if any("dev/macro_f1" in record["metrics"] for record in records):
        chosen["dev macro-F1"] = "dev/macro_f1"
    chosen.update({f"{level} macro-F1": f"level_{level}/macro_f1" for level in levels[:-1]})
    knn_names = levels if len(levels) == len(knn) else [key.split("_")[2] for key in knn]
    chosen.update({f"kNN {level}": key for level, key in zip(knn_names, knn)})
    if any("stage1_mean_pairwise_cosine" in record["metrics"] for record in records):
        chosen["mean cosine"] = "stage1_mean_pairwise_cosine"
    return chosen


def _summary(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(config: Path, names: Sequence[str] | None = None) -> str:
    """One row per variant (mean ± std over its seeds), in the order given or alphabetical."""
    records = read_records(config)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_name[record["name"]].append(record)
    chosen = columns(records)
    rows = []
    for name in names or sorted(by_name):
        group = by_name.get(name, [])
        if not group:
            continue
        cells = [_summary([r["metrics"][key] for r in group if r["metrics"].get(key) is not None])
                 for key in chosen.values()]
        seconds = statistics.mean(r["seconds"] for r in group)
        training = [r["training_seconds"] for r in group if r.get("training_seconds")]
        seeds = ", ".join(str(r["seed"]) for r in sorted(group, key=lambda r: r["seed"]))
        trained = f"{statistics.mean(training):.0f}" if training else "–"
        rows.append([name, seeds, *cells, trained, f"{seconds:.0f}"])
    return markdown_table(["run", "seeds", *chosen, "training (s)", "run (s)"], rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--name", help="the variant's name in the table")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--table", action="store_true", help="print the table of finished runs and stop")
    options, overrides = parser.parse_known_args(argv)
    overrides = [item for item in overrides if item != "--"]
    if not options.table:
        if not options.name:
            parser.error("give --name for the runs (or --table)")
        for seed in options.seeds:
            run(options.config, options.name, seed, overrides)
            print(table(options.config), flush=True)
    print(table(options.config))


if __name__ == "__main__":
    main()
