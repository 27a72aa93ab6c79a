"""``compute_metrics`` factories for :class:`transformers.Trainer` evaluation loops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from hiercon.errors import ConfigError
from hiercon.metrics.classification import Thresholds
from hiercon.metrics.evaluation import evaluate_multilabel
from hiercon.metrics.inputs import ArrayLike, as_matrix, to_numpy
from hiercon.taxonomy.label_space import LabelSpace

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


def _label_space(
    label_names: Sequence[str] | None, taxonomy: Any, label_space: str | LabelSpace, width: int
) -> LabelSpace:
    """The label space of the classifier's ``width`` columns."""
    if isinstance(label_space, LabelSpace):
        return label_space
    if taxonomy is None:
        return LabelSpace.flat(label_names if label_names is not None else [f"label_{i}" for i in range(width)])
    if label_names is not None:
        return LabelSpace.for_names(label_names, taxonomy)
    return LabelSpace(taxonomy, label_space)  # type: ignore[arg-type]


def make_compute_metrics(
    label_names: Sequence[str] | None = None,
    taxonomy: Any = None,
    thresholds: Thresholds | ArrayLike = 0.5,
    label_space: str | LabelSpace = "nodes",
) -> ComputeMetrics:
    """A ``compute_metrics`` for a multi-label classifier trained on logits.

    The returned function applies a sigmoid to the logits and returns
    :func:`~hiercon.metrics.evaluate_multilabel` of the probabilities (see it for the keys: ``macro_f1``
    is over the fine labels; with a taxonomy, ``nodes/``, ``level_<name>/``, hierarchical and
    ``consistent/`` keys follow), with per-label ``f1/<name>`` when ``label_names`` are given.
    The columns are ``label_space``: a :class:`~hiercon.taxonomy.LabelSpace`, or ``"nodes"`` /
    ``"leaves"`` of ``taxonomy`` (``label_names``, when given, must be those columns in order), or flat
    labels without a taxonomy. All values are plain floats.
    """
    if not isinstance(label_space, LabelSpace) and label_space not in LABEL_SPACES:
        raise ConfigError(f"label_space must be one of {LABEL_SPACES} or a LabelSpace, got {label_space!r}")
    names = list(label_names) if label_names is not None else None

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        logits, label_ids = _predictions_and_labels(eval_prediction)
        probabilities = expit(as_matrix(logits, "logits"))
        truth = np.rint(to_numpy(label_ids, "label_ids").astype(np.float64))
        space = _label_space(names, taxonomy, label_space, probabilities.shape[1])
        results = evaluate_multilabel(probabilities, truth, space, thresholds, per_label_f1=names is not None)
        return {key: float(value) for key, value in results.items()}

    return compute_metrics
