"""``compute_metrics`` for stage 1: how well an embedding space groups examples by label.

The predictions are the embeddings that :meth:`ContrastiveTrainer.prediction_step` returns and the
label ids the evaluation set's multi-hot labels (or class ids). Scores, computed leave-one-out on
the evaluation set:

- ``knn_micro_f1`` / ``knn_macro_f1``: similarity-weighted cosine kNN multi-label vote;
- ``map_at_r``: retrieval MAP@R (relevant = shares a label);
- ``mean_pairwise_cosine``: near 1 when the embeddings collapse to one direction;
- with a taxonomy, per level ``d``: ``level_d_accuracy`` when every example has exactly one label at
  that depth, else ``level_d_micro_f1`` / ``level_d_macro_f1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hiercon.errors import ConfigError, HierconError
from hiercon.metrics.embedding import knn_level_accuracy, knn_multilabel_f1, map_at_r
from hiercon.metrics.hierarchical import node_space


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, (tuple, list)) and values and not np.isscalar(values[0]):
        values = values[0] if isinstance(values, tuple) else values
    return np.asarray(values)


def _node_labels(labels: np.ndarray, taxonomy: Any) -> np.ndarray:
    """Multi-hot over all taxonomy nodes, ancestors switched on, from class ids or multi-hot rows over
    the nodes or the leaves."""
    space = node_space(taxonomy)
    try:
        if labels.ndim == 1:
            return np.asarray(space.multi_hot(labels.astype(np.int64)))
        return np.asarray(space.to_nodes(labels.astype(np.float32)))
    except HierconError as error:
        raise ConfigError(f"stage-1 metrics: {error}") from None


def _levels(labels: np.ndarray, taxonomy: Any) -> dict[str, np.ndarray]:
    """Per-depth labels: class ids when each example has exactly one label at that depth."""
    levels: dict[str, np.ndarray] = {}
    for depth in range(int(taxonomy.num_levels)):
        level = labels[:, taxonomy.level_ids(depth).numpy()] > 0
        if (level.sum(axis=1) == 1).all():
            levels[f"level_{depth}"] = level.argmax(axis=1)
        elif level.any():
            levels[f"level_{depth}"] = level.astype(np.float32)
    return levels


def mean_pairwise_cosine(embeddings: Any) -> float:
    """The mean cosine similarity over all pairs of distinct rows: near 1 when the embeddings collapse
    to one direction, near 0 when they spread (``(|sum of unit rows|^2 - n) / (n (n - 1))``)."""
    points = np.asarray(embeddings, dtype=np.float64)
    if points.shape[0] < 2:
        raise ConfigError("the mean pairwise cosine needs at least two embeddings")
    units = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    total = units.sum(axis=0)
    count = units.shape[0]
    return float((total @ total - count) / (count * (count - 1)))


def stage1_metrics(embeddings: Any, labels: Any, taxonomy: Any = None, k: int = 10) -> dict[str, float]:
    """The stage-1 scores of ``embeddings`` ``[n, d]`` against ``labels`` (see the module docstring).

    With a ``taxonomy`` (or a label space), ``labels`` may be class ids or multi-hot over the taxonomy's
    nodes or leaves; they are scored over all nodes with ancestors switched on.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = _as_array(labels)
    if embeddings.ndim != 2 or labels.shape[0] != embeddings.shape[0]:
        raise ConfigError(
            f"stage-1 metrics need embeddings [n, d] and labels with n rows, got {embeddings.shape} and {labels.shape}"
        )
    if taxonomy is not None:
        labels = _node_labels(labels, taxonomy)
    k = min(k, embeddings.shape[0] - 1)
    results = {f"knn_{name}": value for name, value in knn_multilabel_f1(embeddings, labels, k=k).items()}
    results["mean_pairwise_cosine"] = mean_pairwise_cosine(embeddings)
    try:
        results["map_at_r"] = map_at_r(embeddings, labels)
    except HierconError:
        results["map_at_r"] = float("nan")
    if taxonomy is not None:
        levels = _levels(labels, node_space(taxonomy).taxonomy)
        if levels:
            results.update(knn_level_accuracy(embeddings, levels, k=k))
    return results


def make_stage1_compute_metrics(taxonomy: Any = None, k: int = 10) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for :class:`~hiercon.training.ContrastiveTrainer` (see :func:`stage1_metrics`)."""

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        if eval_prediction.label_ids is None:
            raise ConfigError(
                "stage-1 metrics need the evaluation set's labels (label_names / a labels column)"
            )
        return stage1_metrics(eval_prediction.predictions, eval_prediction.label_ids, taxonomy, k)

    return compute_metrics
