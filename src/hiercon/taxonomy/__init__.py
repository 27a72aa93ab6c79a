"""Label taxonomies: a validated DAG of label names (:class:`LabelTaxonomy`) and data-driven hierarchies.

The data-driven functions import scikit-learn, so they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hiercon._lazy import lazy_exports
from hiercon.taxonomy.graph import LabelTaxonomy
from hiercon.taxonomy.label_space import LabelSpace

_DATA_DRIVEN = ("HierarchicalClustering", "agglomerative_taxonomy", "cooccurrence_graph", "hierarchical_kmeans")

__all__ = [
    "HierarchicalClustering",
    "LabelSpace",
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

__getattr__, __dir__ = lazy_exports(globals(), dict.fromkeys(_DATA_DRIVEN, "hiercon.taxonomy.data_driven"))
