"""Label taxonomies: a validated DAG of label names (:class:`LabelTaxonomy`) and data-driven hierarchies."""

from __future__ import annotations

from hiercon.taxonomy.data_driven import (
    HierarchicalClustering,
    agglomerative_taxonomy,
    cooccurrence_graph,
    hierarchical_kmeans,
)
from hiercon.taxonomy.graph import LabelTaxonomy

__all__ = [
    "HierarchicalClustering",
    "LabelTaxonomy",
    "agglomerative_taxonomy",
    "cooccurrence_graph",
    "hierarchical_kmeans",
]
