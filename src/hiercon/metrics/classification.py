"""Multi-label classification metrics from per-label scores and decision thresholds (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    coverage_error,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    label_ranking_loss,
    precision_recall_fscore_support,
)

from hiercon.errors import HierconError
from hiercon.metrics.inputs import ArrayLike, as_matrix, as_multi_hot, check_same_shape, to_numpy

Thresholds = float | Sequence[float] | np.ndarray


def resolve_thresholds(thresholds: Thresholds | ArrayLike, num_labels: int) -> np.ndarray:
    """One decision threshold per label: a scalar is shared, a sequence must have ``num_labels`` entries."""
    values = to_numpy(thresholds, "thresholds").astype(np.float64)
    if values.ndim == 0:
        values = np.full(num_labels, float(values))
    if values.shape != (num_labels,):
        raise HierconError(
            f"thresholds must be a scalar or hold {num_labels} values, got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise HierconError("thresholds hold NaN or infinite values")
    return values


def check_label_names(label_names: Sequence[str] | None, num_labels: int) -> list[str]:
    """``label_names`` as a list of ``num_labels`` strings (``label_0``... when absent)."""
    if label_names is None:
        return [f"label_{i}" for i in range(num_labels)]
    names = [str(name) for name in label_names]
    if len(names) != num_labels:
        raise HierconError(f"{len(names)} label_names given for {num_labels} label columns")
    return names


def check_truth_and_scores(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A multi-hot truth matrix and a finite score matrix of the same shape."""
    truth = as_multi_hot(y_true, "y_true")
    score_matrix = as_matrix(scores, "scores")
    check_same_shape(truth, score_matrix, "y_true", "scores")
    return truth, score_matrix


def binarize(scores: np.ndarray, thresholds: Thresholds | ArrayLike) -> np.ndarray:
    """Multi-hot predictions: ``scores >= threshold`` per label."""
    return (scores >= resolve_thresholds(thresholds, scores.shape[1])[None, :]).astype(np.int64)


def present_labels(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Columns with a positive in the truth or the prediction (the only ones where F1 is defined)."""
    return np.flatnonzero(y_true.any(axis=0) | y_pred.any(axis=0))


def f1_summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Micro F1 and macro F1 (macro over :func:`present_labels`)."""
    present = present_labels(y_true, y_pred)
    if present.size == 0:
        return {"micro_f1": 0.0, "macro_f1": 0.0}
    return {
        average + "_f1": float(f1_score(y_true, y_pred, average=average, labels=present, zero_division=0))
        for average in ("micro", "macro")
    }


def _averaged_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    present = present_labels(y_true, y_pred)
    results: dict[str, float] = {}
    for average in ("micro", "macro", "weighted", "samples"):
        if present.size == 0:
            precision = recall = f1 = 0.0
        else:
            labels = present if average != "samples" else None
            precision, recall, f1, _ = precision_recall_fscore_support(
                y_true, y_pred, average=average, labels=labels, zero_division=0
            )
        results.update(
            {
                f"{average}_f1": float(f1),
                f"{average}_precision": float(precision),
                f"{average}_recall": float(recall),
            }
        )
    return results


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro average precision over the labels that have at least one positive example."""
    with_positive = np.flatnonzero(y_true.any(axis=0))
    if with_positive.size == 0:
        raise HierconError("mAP is undefined: no label has a positive example in y_true")
    return float(average_precision_score(y_true[:, with_positive], scores[:, with_positive], average="macro"))


def _ranking_scores(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "map": mean_average_precision(y_true, scores),
        "lrap": float(label_ranking_average_precision_score(y_true, scores)),
        "coverage_error": float(coverage_error(y_true, scores)),
        "ranking_loss": float(label_ranking_loss(y_true, scores)),
    }


def multilabel_metrics(
    y_true: ArrayLike,
    scores: ArrayLike,
    thresholds: Thresholds | ArrayLike = 0.5,
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Threshold and ranking metrics of a multi-label classifier.

    ``y_true`` is multi-hot ``[n, L]``, ``scores`` are per-label probabilities (or any scores the
    ``thresholds`` apply to), predicted positive where ``score >= threshold``. Returns
    ``{micro,macro,weighted,samples}_{f1,precision,recall}``, ``hamming_loss``, ``subset_accuracy``,
    ``map`` (macro AP over labels with a positive), ``lrap``, ``coverage_error``, ``ranking_loss``
    and, when ``label_names`` are given, ``f1/<label>`` per label. Macro averages run over the
    labels present in the truth or the predictions (F1 is undefined elsewhere).
    """
    truth, score_matrix = check_truth_and_scores(y_true, scores)
    return prediction_metrics(truth, binarize(score_matrix, thresholds), score_matrix, label_names)


def prediction_metrics(
    truth: np.ndarray,
    predictions: np.ndarray,
    scores: np.ndarray,
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """The metrics of :func:`multilabel_metrics` from multi-hot ``predictions`` already made (the threshold
    metrics) and the ``scores`` they came from (the ranking metrics), all ``[n, L]`` and checked."""
    results = _averaged_scores(truth, predictions)
    results["hamming_loss"] = float(hamming_loss(truth, predictions))
    results["subset_accuracy"] = float((truth == predictions).all(axis=1).mean())
    results.update(_ranking_scores(truth, scores))
    if label_names is not None:
        names = check_label_names(label_names, truth.shape[1])
        per_label = f1_score(truth, predictions, average=None, zero_division=0)
        results.update({f"f1/{name}": float(value) for name, value in zip(names, per_label)})
    return results


def per_label_report(
    y_true: ArrayLike,
    scores: ArrayLike,
    thresholds: Thresholds | ArrayLike = 0.5,
    label_names: Sequence[str] | None = None,
) -> list[dict[str, object]]:
    """One row per label: ``label``, ``precision``, ``recall``, ``f1``, ``support``, ``threshold``
    and ``ap`` (average precision; ``None`` for a label without a positive example)."""
    truth, score_matrix = check_truth_and_scores(y_true, scores)
    names = check_label_names(label_names, truth.shape[1])
    label_thresholds = resolve_thresholds(thresholds, truth.shape[1])
    predictions = binarize(score_matrix, label_thresholds)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predictions, average=None, zero_division=0
    )
    rows = []
    for column, name in enumerate(names):
        has_positive = bool(truth[:, column].any())
        ap = average_precision_score(truth[:, column], score_matrix[:, column]) if has_positive else None
        rows.append(
            {
                "label": name,
                "precision": float(precision[column]),
                "recall": float(recall[column]),
                "f1": float(f1[column]),
                "support": int(support[column]),
                "threshold": float(label_thresholds[column]),
                "ap": None if ap is None else float(ap),
            }
        )
    return rows
