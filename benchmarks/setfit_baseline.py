"""SetFit (Tunstall et al., 2022) on exactly the rows and scoring of a hiercon recipe run.

The data come from the recipe's own loader (``hiercon.recipe.data.load_recipe_data`` with the
config's subsets and seed), the model is SetFit's contrastive pair fine-tuning of the same encoder
followed by its one-vs-rest logistic-regression head on the fine labels (the taxonomy's leaves),
thresholds are tuned on the recipe's validation rows by ``hiercon.metrics.tune_thresholds`` with the recipe's
rule (``stage2.threshold_min_positives`` and ``stage2.threshold_shrinkage``) and the
test split is scored by ``hiercon.metrics.evaluate_multilabel``, as ``hiercon train`` scores itself.
Two budgets:

* ``--budget default``: SetFit's defaults (``num_iterations=20`` pairs per example, one epoch);
* ``--budget passes``: as many encoder passes per example as the recipe's stage 1 (a pair costs two).

SetFit is not a hiercon dependency: ``pip install setfit`` (1.2 runs on this stack).

    python benchmarks/setfit_baseline.py benchmarks/configs/goemotions_losses.yaml --budget passes
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "recipe_runs"
sys.path.insert(0, str(REPO / "src"))

from hiercon.metrics.evaluation import evaluate_multilabel  # noqa: E402
from hiercon.metrics.thresholds import tune_thresholds  # noqa: E402
from hiercon.recipe.config import load_recipe  # noqa: E402
from hiercon.recipe.data import LABELS, load_recipe_data  # noqa: E402
from hiercon.recipe.inputs import resolve_encoder_path  # noqa: E402
from hiercon.taxonomy.label_space import LabelSpace  # noqa: E402


def leaf_targets(dataset, leaves: LabelSpace) -> np.ndarray:
    """The split's multi-hot over the taxonomy's leaves (the recipe encodes over all nodes)."""
    return leaves.restrict(np.asarray(dataset[LABELS], dtype=np.float32))


def train_setfit(encoder: str, texts: list[str], targets: np.ndarray, budget: str, passes: int,
                 max_length: int, seed: int):
    """A SetFit model trained on ``texts``; the pair count follows ``budget``."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(encoder, multi_target_strategy="one-vs-rest")
    options = {"batch_size": 16, "num_epochs": 1, "max_length": max_length, "seed": seed,
               "report_to": "none", "save_strategy": "no", "show_progress_bar": False}
    if budget == "passes":
        options.update(num_iterations=1, max_steps=math.ceil(passes * len(texts) / 2 / options["batch_size"]))
    data = Dataset.from_dict({"text": texts, "label": targets.astype(int).tolist()})
    trainer = Trainer(model=model, args=TrainingArguments(**options), train_dataset=data, metric=lambda p, r: {})
    trainer.train()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--budget", choices=("default", "passes"), default="default")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    options, overrides = parser.parse_known_args()
    for seed in options.seeds:
        args = load_recipe(options.config, [*overrides, "--output.seed", str(seed)])
        data = load_recipe_data(args.data, seed=seed, label_space="nodes")
        leaves = LabelSpace(data.taxonomy, "leaves")
        column = data.input_column
        passes = int(args.stage1.num_train_epochs * args.stage1.num_views)
        start = time.perf_counter()
        model = train_setfit(resolve_encoder_path(args.model.model_name_or_path),
                             list(data.train[column]), leaf_targets(data.train, leaves),
                             options.budget, passes, args.model.max_length, seed)
        seconds = time.perf_counter() - start
        dev_scores = np.asarray(model.predict_proba(list(data.validation[column]), as_numpy=True), np.float32)
        test_scores = np.asarray(model.predict_proba(list(data.test[column]), as_numpy=True), np.float32)
        thresholds = tune_thresholds(leaf_targets(data.validation, leaves), dev_scores,
                                     min_positives=args.stage2.threshold_min_positives,
                                     shrinkage=args.stage2.threshold_shrinkage)
        metrics = evaluate_multilabel(test_scores, np.asarray(data.test[LABELS], np.float32), leaves, thresholds)
        name = f"setfit_{options.budget}"
        record = {"name": name, "seed": seed, "seconds": seconds, "overrides": overrides,
                  "command": " ".join(["python benchmarks/setfit_baseline.py", str(options.config),
                                       "--budget", options.budget, *overrides]),
                  "metrics": metrics}
        folder = RESULTS / options.config.stem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}_seed{seed}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        print(f"{name} seed {seed}: macro-F1 {metrics['macro_f1']:.4f} in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
