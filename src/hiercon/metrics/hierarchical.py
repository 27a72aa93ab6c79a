"""Hierarchy-aware metrics over a :class:`~hiercon.LabelTaxonomy`'s nodes.

Predictions and truths are multi-hot matrices over all taxonomy nodes (label space ``"nodes"``,
columns in ``taxonomy.labels`` order). Leaf-space matrices are lifted to node space by
:func:`leaves_to_nodes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hiercon.errors import HierconError
from hiercon.metrics.classification import f1_summary
from hiercon.metrics.inputs import ArrayLike, as_multi_hot, check_same_shape
from hiercon.taxonomy.label_space import LabelSpace


def node_space(taxonomy: Any) -> LabelSpace:
    """The ``"nodes"`` label space of a taxonomy (or of the taxonomy of a label space)."""
    return LabelSpace(taxonomy.taxonomy if isinstance(taxonomy, LabelSpace) else taxonomy, "nodes")


def _node_matrix(values: ArrayLike, name: str, taxonomy: Any) -> np.ndarray:
    matrix = as_multi_hot(values, name)
    if matrix.shape[1] != taxonomy.num_labels:
        raise HierconError(
            f"{name} has {matrix.shape[1]} columns but the taxonomy has {taxonomy.num_labels} nodes "
            "(lift leaf-space matrices with leaves_to_nodes first)"
        )
    return matrix


def close_under_ancestors(multi_hot_nodes: ArrayLike, taxonomy: Any) -> np.ndarray:
    """Switch on every ancestor of every switched-on node (the ancestor-augmented label sets)."""
    space = node_space(taxonomy)
    nodes = _node_matrix(multi_hot_nodes, "multi_hot_nodes", space)
    return space.close(nodes).astype(np.int64)


def leaves_to_nodes(
    multi_hot_leaves: ArrayLike, taxonomy: Any, leaf_labels: Sequence[str] | None = None
) -> np.ndarray:
    """Lift a leaf-space multi-hot matrix to node space, ancestors switched on.

    Column ``j`` of ``multi_hot_leaves`` is the leaf ``leaf_labels[j]`` (default: ``taxonomy.leaves``).
    """
    space = node_space(taxonomy)
    leaves = as_multi_hot(multi_hot_leaves, "multi_hot_leaves")
    names = list(space.taxonomy.leaves if leaf_labels is None else leaf_labels)
    if len(names) != leaves.shape[1]:
        raise HierconError(f"multi_hot_leaves has {leaves.shape[1]} columns for {len(names)} leaf labels")
    nodes = np.zeros((leaves.shape[0], space.num_nodes), dtype=np.int64)
    nodes[:, [space.index(name) for name in names]] = leaves
    return space.close(nodes).astype(np.int64)


def consistency_rate(multi_hot_nodes: ArrayLike, taxonomy: Any) -> float:
    """Share of rows in which no node is switched on without all of its ancestors."""
    space = node_space(taxonomy)
    nodes = _node_matrix(multi_hot_nodes, "y_pred", space)
    if nodes.shape[0] == 0:
        raise HierconError("y_pred is empty")
    return float(np.mean(space.is_consistent(nodes)))


def hierarchical_metrics(y_true: ArrayLike, y_pred: ArrayLike, taxonomy: Any) -> dict[str, float]:
    """Hierarchical precision, recall and F1 (Kiritchenko et al., 2005) and the consistency rate.

    Both label sets are augmented with their ancestors, :math:`\\hat T_i` and :math:`\\hat P_i`;
    then, micro-averaged over examples,

    .. math:: hP = \\frac{\\sum_i |\\hat P_i \\cap \\hat T_i|}{\\sum_i |\\hat P_i|}, \\quad
              hR = \\frac{\\sum_i |\\hat P_i \\cap \\hat T_i|}{\\sum_i |\\hat T_i|}, \\quad
              hF = \\frac{2\\, hP\\, hR}{hP + hR}.

    ``consistency_rate`` is the share of predictions in which no child is predicted without its parent.
    Returns ``hierarchical_precision``, ``hierarchical_recall``, ``hierarchical_f1``, ``consistency_rate``.
    """
    space = node_space(taxonomy)
    truth = _node_matrix(y_true, "y_true", space)
    predictions = _node_matrix(y_pred, "y_pred", space)
    check_same_shape(truth, predictions, "y_true", "y_pred")
    augmented_truth = space.close(truth).astype(np.int64)
    augmented_predictions = space.close(predictions).astype(np.int64)
    overlap = float((augmented_truth & augmented_predictions).sum())
    predicted, true = float(augmented_predictions.sum()), float(augmented_truth.sum())
    precision = overlap / predicted if predicted else 0.0
    recall = overlap / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "hierarchical_precision": precision,
        "hierarchical_recall": recall,
        "hierarchical_f1": f1,
        "consistency_rate": consistency_rate(predictions, space),
    }


def level_names(taxonomy: Any) -> list[str]:
    """A name per taxonomy level: the labels' shared ``prefix:`` when they have one (``sentiment``
    for ``sentiment:positive``...), else ``level_<depth>``."""
    taxonomy = node_space(taxonomy).taxonomy
    names = []
    for depth in range(int(taxonomy.num_levels)):
        labels = taxonomy.level_labels(depth)
        prefixes = {label.split(":", 1)[0] for label in labels}
        labels_have_prefix = all(":" in label for label in labels)
        names.append(prefixes.pop() if len(prefixes) == 1 and labels_have_prefix else f"level_{depth}")
    return names


def level_metrics(y_true_nodes: ArrayLike, y_pred_nodes: ArrayLike, taxonomy: Any) -> dict[str, float]:
    """Micro and macro F1 on the nodes of each taxonomy level: ``"<level>_micro_f1"`` and
    ``"<level>_macro_f1"`` with the level names of :func:`level_names` (e.g. ``ekman_micro_f1``)."""
    space = node_space(taxonomy)
    truth = _node_matrix(y_true_nodes, "y_true_nodes", space)
    predictions = _node_matrix(y_pred_nodes, "y_pred_nodes", space)
    check_same_shape(truth, predictions, "y_true_nodes", "y_pred_nodes")
    results: dict[str, float] = {}
    for depth, name in enumerate(level_names(space)):
        columns = space.taxonomy.level_ids(depth).numpy()
        summary = f1_summary(truth[:, columns], predictions[:, columns])
        results.update({f"{name}_{metric}": value for metric, value in summary.items()})
    return results
