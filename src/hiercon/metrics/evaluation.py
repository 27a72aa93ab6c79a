"""The one evaluation of a multi-label classifier: fine-label, node, level and hierarchical scores, raw and
after hierarchy-consistent decoding.

The recipe, ``compute_metrics`` (:func:`hiercon.metrics.make_compute_metrics`), the benchmarks and the
model card all report what :func:`evaluate_multilabel` returns, so a number means the same everywhere.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from hiercon.errors import HierconError
from hiercon.metrics.classification import Thresholds, f1_summary, prediction_metrics, resolve_thresholds
from hiercon.metrics.hierarchical import hierarchical_metrics, level_names
from hiercon.metrics.inputs import ArrayLike, as_matrix, to_numpy
from hiercon.taxonomy.label_space import LabelSpace, check_multi_hot

NODES_PREFIX = "nodes/"
CONSISTENT_PREFIX = "consistent/"


def level_key(name: str) -> str:
    """The key prefix of one taxonomy level's scores: ``level_<name>`` (``level_ekman``, ``level_0``)."""
    return name if name.startswith("level_") else f"level_{name}"


def fine_columns(label_space: LabelSpace) -> np.ndarray:
    """The columns holding the fine labels: the taxonomy's leaves among the columns (all of them on a
    ``"leaves"`` or flat space)."""
    if label_space.columns == "leaves" or label_space.is_flat:
        return np.arange(label_space.num_labels)
    return label_space.taxonomy.leaf_ids.numpy()


def evaluate_multilabel(
    scores: ArrayLike,
    truth: ArrayLike,
    label_space: LabelSpace | None = None,
    thresholds: Thresholds | ArrayLike = 0.5,
    per_label_f1: bool = False,
    repair_scores: bool = False,
) -> dict[str, float]:
    """Every score of a multi-label classifier, from its scores over the columns of ``label_space``.

    Args:
        scores: ``[n, C]`` per-column scores (sigmoid probabilities), a column is predicted where
            ``score >= threshold``.
        truth: ``[n, C]`` multi-hot over the columns, or ``[n, num_nodes]`` over all taxonomy nodes.
        label_space: the columns (a :class:`~hiercon.taxonomy.LabelSpace`); ``None`` means flat labels.
        thresholds: one threshold, or one per column.
        per_label_f1: add ``f1/<column name>`` for every column.
        repair_scores: the consistent decoding caps scores by their ancestors' first (as
            ``MultiLabelPredictor(repair_scores=True)`` serves).

    Returns:
        Plain floats under these keys (a hierarchy adds the node, level and ``consistent/`` keys):

        - **headline, over the fine labels** (the taxonomy's leaves, or the flat labels; in a
          ``"nodes"`` space the leaf columns are picked out): ``micro_f1``, ``macro_f1`` (macro over the
          fine labels, the data sets' standard metric), ``weighted_f1``, ``samples_f1``, the matching
          ``*_precision`` and ``*_recall``, ``hamming_loss``, ``subset_accuracy``, ``map`` (macro average
          precision), ``lrap``, ``coverage_error``, ``ranking_loss``;
        - **nodes**: the same keys prefixed ``nodes/`` over all taxonomy nodes. Node predictions are the
          column predictions of a ``"nodes"`` space as made, or the leaf predictions with their
          ancestors switched on; node scores are the columns' scores, or the leaf scores lifted by the
          maximum over each node's leaves (:meth:`LabelSpace.lift`);
        - **levels**: ``level_<name>/micro_f1`` and ``level_<name>/macro_f1`` over the nodes at each depth
          (``<name>`` is the labels' shared ``prefix:``, e.g. ``level_ekman``, or ``level_<depth>``);
        - **hierarchy**: ``hierarchical_precision``, ``hierarchical_recall``, ``hierarchical_f1``
          (Kiritchenko et al., 2005, on ancestor-augmented label sets) and ``consistency_rate`` (share of
          rows whose node predictions hold every ancestor of a predicted node);
        - **consistent decoding**: every key above prefixed ``consistent/``, scored on the predictions
          of :meth:`LabelSpace.consistent_predictions` (thresholds, then every ancestor of a predicted
          column switched on), which is what :class:`~hiercon.inference.MultiLabelPredictor` serves;
          equal to the raw keys on a ``"leaves"`` space, and on the fine labels unless ``repair_scores``.
    """
    score_matrix = as_matrix(scores, "scores")
    space = label_space if label_space is not None else LabelSpace.flat(
        [f"label_{i}" for i in range(score_matrix.shape[1])]
    )
    if score_matrix.shape[1] != space.num_labels:
        raise HierconError(f"scores have {score_matrix.shape[1]} columns but the label space has {space.num_labels}")
    truth_columns = _truth_over_columns(truth, space, score_matrix.shape[0])
    limits = resolve_thresholds(thresholds, space.num_labels)
    predictions = (score_matrix >= limits[None, :]).astype(np.int64)
    results = _decoded_metrics(score_matrix, predictions, truth_columns, space)
    if per_label_f1:
        values = f1_score(truth_columns, predictions, average=None, zero_division=0)
        results.update({f"f1/{name}": float(value) for name, value in zip(space.names, values)})
    if not space.is_flat:
        used, decoded = space.consistent_predictions(score_matrix, limits, repair_scores)
        consistent = _decoded_metrics(
            np.asarray(used, dtype=np.float64), np.asarray(decoded).astype(np.int64), truth_columns, space
        )
        results.update({CONSISTENT_PREFIX + key: value for key, value in consistent.items()})
    return results


def _truth_over_columns(truth: ArrayLike, space: LabelSpace, rows: int) -> np.ndarray:
    values = to_numpy(truth, "truth")
    check_multi_hot(values, "truth", (space.num_labels, space.num_nodes), error=HierconError)
    if values.shape[0] != rows:
        raise HierconError(f"truth has {values.shape[0]} rows but scores have {rows}")
    return np.asarray(space.multi_hot(values.astype(np.float32), name="truth")).astype(np.int64)


def _decoded_metrics(
    scores: np.ndarray, predictions: np.ndarray, truth: np.ndarray, space: LabelSpace
) -> dict[str, float]:
    """The fine-label, node, level and hierarchical scores of one set of scores and its predictions."""
    fine = fine_columns(space)
    results = prediction_metrics(truth[:, fine], predictions[:, fine], scores[:, fine])
    if space.is_flat:
        return results
    node_truth = np.asarray(space.to_nodes(truth)).astype(np.int64)
    if space.columns == "nodes":
        node_predictions, node_scores = predictions, scores
    else:
        node_predictions = np.asarray(space.to_nodes(predictions)).astype(np.int64)
        node_scores = np.asarray(space.lift(scores), dtype=np.float64)
    node_results = prediction_metrics(node_truth, node_predictions, node_scores)
    results.update({NODES_PREFIX + key: value for key, value in node_results.items()})
    for depth, name in enumerate(level_names(space)):
        columns = space.taxonomy.level_ids(depth).numpy()
        summary = f1_summary(node_truth[:, columns], node_predictions[:, columns])
        results.update({f"{level_key(name)}/{key}": value for key, value in summary.items()})
    results.update(hierarchical_metrics(node_truth, node_predictions, space))
    return results


def describe_metric(key: str) -> str:
    """A short human name of an :func:`evaluate_multilabel` key (``"consistent/macro_f1"`` ->
    ``"macro F1 (fine labels), consistent decoding"``)."""
    consistent = key.startswith(CONSISTENT_PREFIX)
    key = key.removeprefix(CONSISTENT_PREFIX)
    scope, _, metric = key.rpartition("/")
    name = METRIC_NAMES.get(metric, metric)
    if scope == "nodes":
        name = f"node {name}"
    elif scope:
        name = f"{scope.removeprefix('level_')} {name}"
    elif metric in FINE_LABEL_METRICS:
        name = f"{name} (fine labels)"
    return f"{name}, consistent decoding" if consistent else name


#: Headline keys that are scored over the fine labels (the taxonomy's leaves, or the flat labels).
FINE_LABEL_METRICS = ("micro_f1", "macro_f1", "map")
METRIC_NAMES: dict[str, str] = {
    "micro_f1": "micro F1",
    "macro_f1": "macro F1",
    "map": "mAP",
    "hierarchical_f1": "hierarchical F1",
    "consistency_rate": "consistency",
}

