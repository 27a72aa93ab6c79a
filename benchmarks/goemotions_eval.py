"""Scoring of GoEmotions runs with hiercon's own metrics, taxonomy and threshold tuning.

Models predict the 28 emotions (the taxonomy's leaves). Thresholds are tuned per emotion on the dev
subset and applied to the full test split. Emotion predictions are lifted to the Ekman and sentiment
levels through the taxonomy (a node is predicted when one of its emotions is). The consistency rate
is measured on node scores lifted by the max over each node's emotions and thresholded per node
(thresholds tuned on dev): the share of test rows in which no node is predicted without its parent.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LabelSpace:
    """The emotion label space of GoEmotions and its taxonomy file."""

    taxonomy_file: Path
    leaf_labels: list[str]

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> LabelSpace:
        taxonomy_file = Path(data_dir) / "taxonomy_edges.tsv"
        with taxonomy_file.open(newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))[1:]
        parents = {parent for parent, _ in rows}
        leaves = list(dict.fromkeys(child for _, child in rows if child not in parents))
        return cls(taxonomy_file=taxonomy_file, leaf_labels=leaves)

    @property
    def num_labels(self) -> int:
        return len(self.leaf_labels)

    @property
    def emotion_names(self) -> list[str]:
        return [label.split(":", 1)[1] for label in self.leaf_labels]

    @cached_property
    def taxonomy(self) -> Any:
        from hiercon import LabelTaxonomy

        return LabelTaxonomy.from_file(self.taxonomy_file)

    def leaf_targets(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Multi-hot ``[n, 28]`` in ``leaf_labels`` order from the rows' ``emotions`` names."""
        column = {name: i for i, name in enumerate(self.emotion_names)}
        targets = np.zeros((len(rows), self.num_labels), dtype=np.float32)
        for i, row in enumerate(rows):
            targets[i, [column[name] for name in row["emotions"]]] = 1.0
        return targets

    def leaf_label_sets(self, rows: list[dict[str, Any]]) -> list[list[str]]:
        return [[f"emotion:{name}" for name in row["emotions"]] for row in rows]


def macro_f1_at_tuned_thresholds(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro-F1 on the same data the per-label thresholds were tuned on (a dev-curve point)."""
    from hiercon.metrics.classification import multilabel_metrics
    from hiercon.training.thresholds import tune_thresholds

    return round(multilabel_metrics(y_true, scores, tune_thresholds(y_true, scores))["macro_f1"], 4)


def lift_scores(space: LabelSpace, leaf_scores: np.ndarray) -> np.ndarray:
    """Node scores ``[n, num_nodes]``: each node's score is the max over the emotions below or at it."""
    taxonomy = space.taxonomy
    ancestors = np.asarray(taxonomy.ancestor_matrix, dtype=bool)
    leaf_columns = [taxonomy.index(label) for label in space.leaf_labels]
    node_scores = np.zeros((leaf_scores.shape[0], taxonomy.num_labels), dtype=np.float32)
    for leaf_position, leaf_column in enumerate(leaf_columns):
        covered = np.flatnonzero(ancestors[leaf_column])
        node_scores[:, covered] = np.maximum(node_scores[:, covered], leaf_scores[:, [leaf_position]])
    return node_scores


def evaluate_scores(
    space: LabelSpace,
    dev_true: np.ndarray,
    dev_scores: np.ndarray,
    test_true: np.ndarray,
    test_scores: np.ndarray,
) -> dict[str, Any]:
    """Test metrics at dev-tuned thresholds, plus the dev macro-F1 used for model selection."""
    from hiercon.metrics.classification import multilabel_metrics
    from hiercon.metrics.hierarchical import (
        consistency_rate,
        hierarchical_metrics,
        leaves_to_nodes,
        level_metrics,
    )
    from hiercon.training.thresholds import tune_thresholds

    thresholds = tune_thresholds(dev_true, dev_scores)
    dev = multilabel_metrics(dev_true, dev_scores, thresholds)
    test = multilabel_metrics(test_true, test_scores, thresholds, label_names=space.emotion_names)
    taxonomy = space.taxonomy
    predicted_leaves = (test_scores >= thresholds).astype(np.int64)
    true_nodes = leaves_to_nodes(test_true.astype(np.int64), taxonomy, space.leaf_labels)
    predicted_nodes = leaves_to_nodes(predicted_leaves, taxonomy, space.leaf_labels)
    hierarchy = hierarchical_metrics(true_nodes, predicted_nodes, taxonomy)
    levels = level_metrics(true_nodes, predicted_nodes, taxonomy)
    dev_nodes = leaves_to_nodes(dev_true.astype(np.int64), taxonomy, space.leaf_labels)
    node_thresholds = tune_thresholds(dev_nodes, lift_scores(space, dev_scores))
    node_predictions = (lift_scores(space, test_scores) >= node_thresholds).astype(np.int64)
    summary = {
        "micro_f1": test["micro_f1"],
        "macro_f1": test["macro_f1"],
        "mAP": test["map"],
        "hierarchical_f1": hierarchy["hierarchical_f1"],
        "consistency_rate": consistency_rate(node_predictions, taxonomy),
        "ekman_micro_f1": levels.get("ekman_micro_f1"),
        "ekman_macro_f1": levels.get("ekman_macro_f1"),
        "sentiment_micro_f1": levels.get("sentiment_micro_f1"),
        "sentiment_macro_f1": levels.get("sentiment_macro_f1"),
        "per_label_f1": {name: test[f"f1/{name}"] for name in space.emotion_names},
    }
    return {"dev_macro_f1": dev["macro_f1"], "dev_micro_f1": dev["micro_f1"], "test": summary,
            "thresholds": [round(float(t), 3) for t in thresholds]}
