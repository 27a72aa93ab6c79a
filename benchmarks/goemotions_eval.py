"""Scoring of GoEmotions runs with hiercon's own evaluation (``hiercon.metrics.evaluate_multilabel``),
taxonomy and threshold tuning.

Models predict the 28 emotions (the taxonomy's leaves). Thresholds are tuned per emotion on the dev
subset and applied to the full test split. Macro-F1 is over the 28 emotions. Emotion predictions are
lifted to the Ekman and sentiment levels through the taxonomy (a node is predicted when one of its
emotions is), so the consistency rate of leaf predictions is 1.
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

    @cached_property
    def columns(self) -> Any:
        """hiercon's label space of the 28 emotion columns (the taxonomy's leaves, in ``leaf_labels`` order)."""
        from hiercon import LabelSpace as Columns

        return Columns.for_names(self.leaf_labels, self.taxonomy)

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
    from hiercon.metrics import evaluate_multilabel, tune_thresholds

    return round(evaluate_multilabel(scores, y_true, thresholds=tune_thresholds(y_true, scores))["macro_f1"], 4)


def evaluate_scores(
    space: LabelSpace,
    dev_true: np.ndarray,
    dev_scores: np.ndarray,
    test_true: np.ndarray,
    test_scores: np.ndarray,
) -> dict[str, Any]:
    """Test metrics at dev-tuned thresholds (:func:`hiercon.metrics.evaluate_multilabel` over the 28
    emotions, the taxonomy's leaves), plus the dev macro-F1 used for model selection."""
    from hiercon.metrics import evaluate_multilabel, tune_thresholds

    columns = space.columns
    thresholds = tune_thresholds(dev_true, dev_scores)
    dev = evaluate_multilabel(dev_scores, dev_true, columns, thresholds)
    test = evaluate_multilabel(test_scores, test_true, columns, thresholds, per_label_f1=True)
    summary = {
        "micro_f1": test["micro_f1"],
        "macro_f1": test["macro_f1"],
        "mAP": test["map"],
        "hierarchical_f1": test["hierarchical_f1"],
        "consistency_rate": test["consistency_rate"],
        "ekman_micro_f1": test.get("level_ekman/micro_f1"),
        "ekman_macro_f1": test.get("level_ekman/macro_f1"),
        "sentiment_micro_f1": test.get("level_sentiment/micro_f1"),
        "sentiment_macro_f1": test.get("level_sentiment/macro_f1"),
        "per_label_f1": {
            name: test[f"f1/{label}"] for name, label in zip(space.emotion_names, space.leaf_labels)
        },
    }
    return {"dev_macro_f1": dev["macro_f1"], "dev_micro_f1": dev["micro_f1"], "test": summary,
            "thresholds": [round(float(t), 3) for t in thresholds]}
