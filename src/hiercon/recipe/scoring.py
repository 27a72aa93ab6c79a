"""Scoring a run: decision thresholds, the metrics of a trained
classifier on a split, the stage-1 embedding report and the comparison with the baseline.

Every call the recipe makes into the label-space, evaluation and metrics code is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hiercon.recipe.evaluation import (
    comparison_table,
    embed,
    score_split,
    truth_matrix,
)

if TYPE_CHECKING:
    from hiercon.recipe.prepare import Prepared

__all__ = [
    "comparison_table",
    "evaluate_trainer",
    "set_decision_thresholds",
    "stage1_report",
]


def set_decision_thresholds(trainer: Any, prepared: Prepared) -> np.ndarray:
    """Per-label thresholds tuned on validation (labels with fewer than ``stage2.threshold_min_positives``
    positives take the ``stage2.threshold_fallback`` pooled one, and the others are shrunk toward it with
    pseudo-count ``stage2.threshold_shrinkage``), or the fixed threshold, stored in the model config with
    their rule."""
    from hiercon.modeling.classifier import set_thresholds
    from hiercon.training.classifier_trainer import classifier_config

    stage2 = prepared.args.stage2
    if stage2.tune_thresholds:
        thresholds = trainer.tune_thresholds_on(
            prepared.inputs["validation"],
            min_positives=stage2.threshold_min_positives,
            fallback_pool=stage2.threshold_fallback,
            split="validation",
            shrinkage=stage2.threshold_shrinkage,
        )
        return np.asarray(thresholds)
    thresholds = [stage2.threshold] * prepared.data.label_space.num_labels
    set_thresholds(classifier_config(trainer.model), thresholds, {"fixed": stage2.threshold})
    return np.asarray(thresholds)


def evaluate_trainer(
    trainer: Any, prepared: Prepared, thresholds: np.ndarray, split: str
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """The metrics and the per-label table of the trainer's classifier on ``split``."""
    scores, _ = trainer.predict_scores(prepared.inputs[split])
    truth = truth_matrix(prepared.data.splits()[split])
    return score_split(scores, truth, thresholds, prepared.data.taxonomy, prepared.args.stage2.label_space)


def stage1_report(prepared: Prepared, encoder: Any, plots_dir: Path | None) -> dict[str, float]:
    """kNN metrics of the stage-1 embeddings of the test split, and their plot by taxonomy level."""
    from hiercon.metrics.stage1 import stage1_metrics
    from hiercon.training import ContrastiveDataCollator

    taxonomy = prepared.data.taxonomy
    collator = ContrastiveDataCollator(prepared.processor if hasattr(prepared.processor, "pad") else None)
    batch_size = prepared.args.stage2.per_device_eval_batch_size
    embeddings = embed(encoder, prepared.inputs["test"], collator, batch_size)
    truth = prepared.data.label_space.to_nodes(truth_matrix(prepared.data.test))
    metrics = {f"stage1_{key}": value for key, value in stage1_metrics(embeddings, truth, taxonomy).items()}
    if plots_dir is not None:
        from hiercon.metrics.hierarchical import level_names
        from hiercon.plots import plot_embeddings_by_level

        levels = np.asarray(taxonomy.levels)
        per_level = [truth[:, levels == depth] for depth in range(taxonomy.num_levels)]
        names = [
            [taxonomy.label(i) for i in np.flatnonzero(levels == depth)]
            for depth in range(taxonomy.num_levels)
        ]
        plot_embeddings_by_level(
            embeddings,
            per_level,
            level_names(taxonomy),
            plots_dir / "embeddings_by_level.png",
            label_names_per_level=names,
        )
    return metrics
