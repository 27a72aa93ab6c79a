"""Metrics for multi-label, hierarchical and embedding-space evaluation (numpy in, plain floats out)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "knn_multilabel_f1": "hiercon.metrics.embedding",
    "knn_level_accuracy": "hiercon.metrics.embedding",
    "map_at_r": "hiercon.metrics.embedding",
    "nearest_neighbours": "hiercon.metrics.embedding",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hiercon.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
