"""``compute_metrics`` factories for :class:`transformers.Trainer` evaluation loops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from hiercon.errors import ConfigError
from hiercon.metrics.classification import Thresholds, binarize, multilabel_metrics
from hiercon.metrics.hierarchical import hierarchical_metrics, leaves_to_nodes, level_metrics
from hiercon.metrics.inputs import ArrayLike, as_matrix, as_multi_hot, to_numpy

ComputeMetrics = Callable[[Any], dict[str, float]]
LABEL_SPACES = ("nodes", "leaves")


def first_array(value: Any) -> Any:
    """The main array of a Trainer output: the first entry of a tuple of arrays (the logits of
    ``(logits, hidden_states)``, or the first label column when the Trainer has several ``label_names``)."""
    while isinstance(value, (tuple, list)) and value and hasattr(value[0], "shape"):
        value = value[0]
    return value


def _predictions_and_labels(eval_prediction: Any) -> tuple[ArrayLike, ArrayLike]:
    predictions = getattr(eval_prediction, "predictions", None)
    label_ids = getattr(eval_prediction, "label_ids", None)
    if predictions is None and isinstance(eval_prediction, (tuple, list)):
        predictions, label_ids = eval_prediction[0], eval_prediction[1]
    if predictions is None or label_ids is None:
        raise ConfigError(
            "compute_metrics received no predictions or no label_ids; check the Trainer's label_names "
            "and that the evaluation dataset has a labels column"
        )
    return first_array(predictions), first_array(label_ids)


def _hierarchy_metrics(
    truth: np.ndarray,
    predictions: np.ndarray,
    taxonomy: Any,
    label_space: str,
    label_names: Sequence[str] | None,
) -> dict[str, float]:
    if label_space == "leaves":
        truth = leaves_to_nodes(truth, taxonomy, label_names)
        predictions = leaves_to_nodes(predictions, taxonomy, label_names)
    return {
        **hierarchical_metrics(truth, predictions, taxonomy),
        **level_metrics(truth, predictions, taxonomy),
    }


def make_compute_metrics(
    label_names: Sequence[str] | None = None,
    taxonomy: Any = None,
    thresholds: Thresholds | ArrayLike = 0.5,
    label_space: str = "nodes",
) -> ComputeMetrics:
    """A ``compute_metrics`` for a multi-label classifier trained on logits.

    The returned function applies a sigmoid to the logits, thresholds the probabilities and
    returns :func:`~hiercon.metrics.multilabel_metrics` (per-label F1 when ``label_names`` are
    given) plus, with a ``taxonomy``, :func:`~hiercon.metrics.hierarchical_metrics` and
    :func:`~hiercon.metrics.level_metrics`. ``label_space="leaves"`` means the columns are the
    taxonomy's leaves (``label_names`` order, default ``taxonomy.leaves``) and are lifted to all
    nodes for the hierarchical metrics. All values are plain floats.
    """
    if label_space not in LABEL_SPACES:
        raise ConfigError(f"label_space must be one of {LABEL_SPACES}, got {label_space!r}")
    names = list(label_names) if label_names is not None else None

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        logits, label_ids = _predictions_and_labels(eval_prediction)
        probabilities = expit(as_matrix(logits, "logits"))
        truth = as_multi_hot(np.rint(to_numpy(label_ids, "label_ids").astype(np.float64)), "label_ids")
        results = multilabel_metrics(truth, probabilities, thresholds, names)
        if taxonomy is not None:
            predictions = binarize(probabilities, thresholds)
            results.update(_hierarchy_metrics(truth, predictions, taxonomy, label_space, names))
        return {key: float(value) for key, value in results.items()}

    return compute_metrics
