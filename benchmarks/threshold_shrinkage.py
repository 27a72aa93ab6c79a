"""How far to shrink each label's tuned threshold toward its level's pooled one, chosen on dev alone.

``stage2.threshold_shrinkage`` k pulls a label's own F1-optimal threshold toward its taxonomy level's
pooled threshold, ``(n t_own + k t_pooled) / (n + k)`` for a label with n dev positives
(``hiercon.metrics.tune_thresholds_with_fallback``). This script scores that choice without touching
the test split: for each saved classifier of a recipe run it computes the dev scores with
``hiercon.MultiLabelPredictor``, then, over repeated random halvings of dev, tunes thresholds on one
half with each k and measures the fine-label macro-F1 on the other. The dev rows are the run's own
(``load_recipe_data`` with the config, the overrides and the run's seed), so run the recipe first:

    python benchmarks/recipe_runs.py configs/goemotions.yaml --name default_2k --seeds 42 1 2 -- \\
        --data.max_train_samples 2000 --data.max_eval_samples 1000 --output.compare_baseline false
    python benchmarks/threshold_shrinkage.py configs/goemotions.yaml \\
        --runs outputs/bench-runs/goemotions/default_2k --seeds 42 1 2 -- \\
        --data.max_train_samples 2000 --data.max_eval_samples 1000

Writes ``benchmarks/results/threshold_shrinkage.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
sys.path.insert(0, str(REPO / "src"))

from hiercon.inference import MultiLabelPredictor  # noqa: E402
from hiercon.metrics.evaluation import evaluate_multilabel  # noqa: E402
from hiercon.metrics.report import markdown_table  # noqa: E402
from hiercon.metrics.thresholds import tune_thresholds_with_fallback  # noqa: E402
from hiercon.recipe.config import load_recipe  # noqa: E402
from hiercon.recipe.data import LABELS, load_recipe_data  # noqa: E402

SHRINKAGES = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0)


def dev_scores(run_dir: Path, config: Path, overrides: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    """(dev scores, dev truth over the classifier's columns, its label space) of one saved run."""
    args = load_recipe(config, [*overrides, "--output.seed", str(seed)])
    predictor = MultiLabelPredictor.from_pretrained(run_dir)
    data = load_recipe_data(args.data, seed=seed, label_space=predictor.label_space)
    scores = predictor.predict_proba(list(data.validation[data.input_column]), batch_size=64)
    return scores, np.asarray(data.validation[LABELS], dtype=np.float32), predictor.space


def halved_macro_f1(scores: np.ndarray, truth: np.ndarray, space, shrinkage: float, min_positives: int,
                    repeats: int, seed: int) -> float:
    """Mean fine-label macro-F1 on one half of dev with thresholds tuned on the other, both ways round."""
    levels = np.asarray(space.taxonomy.levels)[space.node_ids.numpy()]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        order = rng.permutation(len(truth))
        halves = order[: len(order) // 2], order[len(order) // 2:]
        for tune, held in (halves, halves[::-1]):
            tuned = tune_thresholds_with_fallback(
                truth[tune], scores[tune], min_positives=min_positives, groups=levels, shrinkage=shrinkage
            )
            metrics = evaluate_multilabel(scores[held], truth[held], space, tuned.thresholds)
            values.append(metrics["macro_f1"])
    return float(np.mean(values))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--runs", type=Path, required=True, help="output folder prefix; <prefix>_seed<seed>")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--repeats", type=int, default=20, help="random halvings of dev per run")
    parser.add_argument("--min-positives", type=int, default=5)
    options, overrides = parser.parse_known_args(argv)
    overrides = [value for value in overrides if value != "--"]
    by_seed: dict[int, dict[str, float]] = {}
    for seed in options.seeds:
        run_dir = options.runs.with_name(f"{options.runs.name}_seed{seed}")
        scores, truth, space = dev_scores(run_dir, options.config, overrides, seed)
        by_seed[seed] = {
            str(k): halved_macro_f1(scores, truth, space, k, options.min_positives, options.repeats, seed)
            for k in SHRINKAGES
        }
        print(f"seed {seed}: {by_seed[seed]}", flush=True)
    rows = [
        [f"{k:g}", *(by_seed[seed][str(k)] for seed in options.seeds),
         float(np.mean([by_seed[seed][str(k)] for seed in options.seeds]))]
        for k in SHRINKAGES
    ]
    header = ["shrinkage k", *(f"seed {seed}" for seed in options.seeds), "mean"]
    table = markdown_table(header, rows)
    command = " ".join(["python benchmarks/threshold_shrinkage.py", str(options.config), "--runs",
                        str(options.runs), "--seeds", *map(str, options.seeds), "--", *overrides])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "threshold_shrinkage.json").write_text(
        json.dumps({"command": command, "repeats": options.repeats, "by_seed": by_seed}, indent=1), encoding="utf-8"
    )
    (RESULTS / "threshold_shrinkage.md").write_text(
        "Fine-label macro-F1 on one half of dev, thresholds tuned on the other half "
        f"({options.repeats} random halvings, both ways round).\n\n{table}\n\n`{command}`\n", encoding="utf-8"
    )
    print(table)


if __name__ == "__main__":
    main()
