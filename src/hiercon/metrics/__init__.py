"""Metrics for multi-label, hierarchical and embedding-space evaluation (numpy in, plain floats out).

:func:`evaluate_multilabel` is the one evaluation of a classifier; :func:`stage1_metrics` scores an
embedding space; :func:`tune_thresholds` picks per-label decision thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hiercon._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "evaluate_multilabel": "hiercon.metrics.evaluation",
    "multilabel_metrics": "hiercon.metrics.classification",
    "per_label_report": "hiercon.metrics.classification",
    "resolve_thresholds": "hiercon.metrics.classification",
    "hierarchical_metrics": "hiercon.metrics.hierarchical",
    "level_metrics": "hiercon.metrics.hierarchical",
    "level_names": "hiercon.metrics.hierarchical",
    "leaves_to_nodes": "hiercon.metrics.hierarchical",
    "close_under_ancestors": "hiercon.metrics.hierarchical",
    "consistency_rate": "hiercon.metrics.hierarchical",
    "knn_multilabel_f1": "hiercon.metrics.embedding",
    "knn_level_accuracy": "hiercon.metrics.embedding",
    "map_at_r": "hiercon.metrics.embedding",
    "nearest_neighbours": "hiercon.metrics.embedding",
    "make_compute_metrics": "hiercon.metrics.compute",
    "stage1_metrics": "hiercon.metrics.stage1",
    "make_stage1_compute_metrics": "hiercon.metrics.stage1",
    "tune_thresholds": "hiercon.metrics.thresholds",
    "write_evaluation": "hiercon.metrics.report",
    "per_label_markdown": "hiercon.metrics.report",
    "markdown_table": "hiercon.metrics.report",
}

__all__ = [*_EXPORTS, "EVALUATE_MODULE", "load_metric"]

EVALUATE_MODULE = Path(__file__).with_name("hiercon_metrics.py")


def load_metric(**kwargs: Any) -> Any:
    """hiercon's multi-label metrics as an ``evaluate`` metric, loaded from the local module file
    (works offline; ``evaluate.load(name)`` would look on the Hub)."""
    import evaluate

    return evaluate.load(str(EVALUATE_MODULE), **kwargs)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
