"""Label taxonomies: a validated DAG of label names (:class:`LabelTaxonomy`) and data-driven hierarchies.

The data-driven functions import scikit-learn, so they load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hiercon.taxonomy.graph import LabelTaxonomy

_DATA_DRIVEN = ("HierarchicalClustering", "agglomerative_taxonomy", "cooccurrence_graph", "hierarchical_kmeans")

__all__ = [
    "HierarchicalClustering",
    "LabelTaxonomy",
    "agglomerative_taxonomy",
    "cooccurrence_graph",
    "hierarchical_kmeans",
]

if TYPE_CHECKING:  # pragma: no cover
    from hiercon.taxonomy.data_driven import (
        HierarchicalClustering,
        agglomerative_taxonomy,
        cooccurrence_graph,
        hierarchical_kmeans,
    )


def __getattr__(name: str) -> Any:
    if name in _DATA_DRIVEN:
        return getattr(importlib.import_module("hiercon.taxonomy.data_driven"), name)
    raise AttributeError(f"module 'hiercon.taxonomy' has no attribute {name!r}")
