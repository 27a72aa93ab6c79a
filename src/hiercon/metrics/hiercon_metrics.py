"""hiercon multi-label metrics as a local ``evaluate`` module.

Load it by path, never by name (names resolve on the Hub):
``evaluate.load(path_to_this_file)`` or :func:`hiercon.metrics.load_metric`.
Inputs: ``predictions`` are per-label scores (probabilities), ``references`` multi-hot rows.
"""

import datasets
import evaluate

from hiercon.metrics.classification import multilabel_metrics

_DESCRIPTION = (
    "Multi-label micro/macro/weighted/samples F1, precision and recall, Hamming loss, subset accuracy, "
    "mAP, LRAP, coverage error and ranking loss, computed with scikit-learn."
)
_KWARGS_DESCRIPTION = """
Args:
    predictions: per-label scores, one list of floats per example.
    references: multi-hot labels, one list of 0/1 per example.
    thresholds: a float or one float per label (default 0.5); a label is predicted where score >= threshold.
    label_names: optional names; adds ``f1/<name>`` per label.
Returns:
    a flat dict of floats, as ``hiercon.metrics.multilabel_metrics``.
"""


class HierconMultiLabelMetrics(evaluate.Metric):
    """``evaluate`` wrapper of :func:`hiercon.metrics.multilabel_metrics`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(self, predictions, references, thresholds=0.5, label_names=None) -> dict:
        return multilabel_metrics(references, predictions, thresholds=thresholds, label_names=label_names)
