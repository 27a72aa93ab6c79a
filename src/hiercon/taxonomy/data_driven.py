"""Hierarchies learned from data when no taxonomy exists.

* :func:`cooccurrence_graph`: labels as nodes, co-occurrence counts as edge weights (with Jaccard and NPMI).
* :func:`agglomerative_taxonomy`: labels grouped by agglomerative clustering on the co-occurrence distance
  ``1 - Jaccard`` (scikit-learn ``AgglomerativeClustering`` with a precomputed metric).
* :func:`hierarchical_kmeans`: examples clustered with k-means, then each level's L2-normalised centroids
  clustered again into fewer clusters, giving a tree of cluster ids.
* :func:`kmeans_label_taxonomy`: labels, each given as one vector (e.g. the mean embedding of its
  examples), grouped by :func:`hierarchical_kmeans` under cluster nodes.

Cluster nodes are named ``"l<level>:c<cluster>"`` with level 0 the finest clustering; the coarsest level
forms the roots of the returned taxonomy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import networkx as nx
import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans

from hiercon.errors import HierconError
from hiercon.taxonomy.graph import LabelTaxonomy
from hiercon.taxonomy.label_space import check_multi_hot

#: Above this many points :func:`hierarchical_kmeans` uses ``MiniBatchKMeans`` unless told otherwise.
MINIBATCH_ABOVE = 10_000


def cluster_name(level: int, cluster: int) -> str:
    """Name of a cluster node: ``"l<level>:c<cluster>"`` (level 0 is the finest)."""
    return f"l{level}:c{cluster}"


# ---------------------------------------------------------------------------------------------- co-occurrence


def cooccurrence_graph(multi_hot: Any, names: Sequence[str] | None = None, min_count: int = 1) -> nx.Graph:
    """Undirected graph of label co-occurrence in a multi-hot matrix ``[n_examples, n_labels]``.

    Nodes are the label names (default ``label_<i>``) with attribute ``count`` (examples holding the label).
    An edge joins two labels that occur together in at least ``min_count`` examples; its attributes are
    ``weight`` (that count), ``jaccard`` (``n_ab / (n_a + n_b - n_ab)``) and ``npmi``, the normalized pointwise
    mutual information ``log(p_ab / (p_a p_b)) / -log(p_ab)`` in ``[-1, 1]`` (1 when ``p_ab = 1``).
    """
    matrix = _binary_matrix(multi_hot)
    labels = _names(names, matrix.shape[1])
    if not isinstance(min_count, Integral) or min_count < 1:
        raise HierconError(f"min_count must be a positive integer, got {min_count!r}")
    counts = matrix.sum(axis=0)
    together = matrix.T @ matrix
    graph = nx.Graph()
    graph.add_nodes_from((name, {"count": int(count)}) for name, count in zip(labels, counts))
    first, second = np.triu_indices(len(labels), k=1)
    keep = together[first, second] >= min_count
    first, second = first[keep], second[keep]
    pair = together[first, second]
    jaccard = pair / (counts[first] + counts[second] - pair)
    joint = pair / matrix.shape[0]
    pmi = np.log(joint / ((counts[first] / matrix.shape[0]) * (counts[second] / matrix.shape[0])))
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.where(joint < 1.0, pmi / -np.log(joint), 1.0)
    for a, b, weight, jac, norm in zip(first, second, pair, jaccard, npmi):
        graph.add_edge(labels[a], labels[b], weight=int(weight), jaccard=float(jac), npmi=float(norm))
    return graph


def jaccard_distances(multi_hot: Any) -> np.ndarray:
    """``1 - Jaccard`` between the label columns of a multi-hot matrix (0 on the diagonal)."""
    matrix = _binary_matrix(multi_hot)
    together = matrix.T @ matrix
    counts = np.diag(together)
    union = counts[:, None] + counts[None, :] - together
    with np.errstate(divide="ignore", invalid="ignore"):
        similarity = np.where(union > 0, together / union, 0.0)
    np.fill_diagonal(similarity, 1.0)
    return 1.0 - similarity


# ---------------------------------------------------------------------------------------------- agglomerative


def agglomerative_taxonomy(
    multi_hot: Any,
    names: Sequence[str] | None = None,
    n_clusters: int | Sequence[int] | None = None,
    distance_threshold: float | Sequence[float] | None = None,
    linkage: str = "average",
) -> LabelTaxonomy:
    """A taxonomy whose leaves are the labels and whose inner nodes are clusters of co-occurring labels.

    Labels are clustered with scikit-learn ``AgglomerativeClustering`` (``metric="precomputed"``) on the
    distance ``1 - Jaccard`` of their co-occurrence. Give either ``n_clusters`` (one int, or a strictly
    decreasing sequence: one level per entry, finest first) or ``distance_threshold`` (one float, or an
    increasing sequence). Each level is made to nest in the next: a finer cluster goes under the coarser
    cluster holding most of its labels. Label ids ``0 .. n_labels - 1`` stay those of the input columns;
    the cluster nodes ``"l<level>:c<k>"`` follow, numbered by the first label they hold.
    """
    distances = jaccard_distances(multi_hot)
    labels = _names(names, distances.shape[0])
    if linkage == "ward":
        raise HierconError("linkage='ward' needs Euclidean features; use 'average', 'complete' or 'single'")
    cuts = _agglomerative_cuts(distances.shape[0], n_clusters, distance_threshold)
    assignments = []
    for cut in cuts:
        model = AgglomerativeClustering(metric="precomputed", linkage=linkage, **cut)
        assignments.append(model.fit_predict(distances))
    nested = _nest_levels(assignments)
    return cluster_taxonomy(labels, nested)


def _agglomerative_cuts(
    size: int, n_clusters: int | Sequence[int] | None, distance_threshold: float | Sequence[float] | None
) -> list[dict[str, Any]]:
    if (n_clusters is None) == (distance_threshold is None):
        raise HierconError("give exactly one of n_clusters or distance_threshold")
    if n_clusters is not None:
        ks = _decreasing_counts(n_clusters, size, "labels")
        return [{"n_clusters": k} for k in ks]
    thresholds = [distance_threshold] if isinstance(distance_threshold, Real) else list(distance_threshold)
    if not thresholds or any(b <= a for a, b in zip(thresholds, thresholds[1:])):
        raise HierconError(f"distance_threshold must be a float or a strictly increasing list, got {thresholds}")
    return [{"n_clusters": None, "distance_threshold": float(t), "compute_full_tree": True} for t in thresholds]


def _nest_levels(assignments: list[np.ndarray]) -> list[np.ndarray]:
    """Make each level's clusters unions of the previous level's: each finer cluster joins the coarser
    cluster holding most of its members. Returns per-level label assignments, renumbered 0..k-1."""
    nested = [_renumber(np.asarray(assignments[0]))]
    for coarse in assignments[1:]:
        fine = nested[-1]
        parent = np.array([np.bincount(coarse[fine == c]).argmax() for c in range(fine.max() + 1)])
        nested.append(_renumber(parent[fine]))
    return nested


def _renumber(assignment: np.ndarray) -> np.ndarray:
    """Relabel clusters 0, 1, ... in order of first appearance."""
    _, first = np.unique(assignment, return_index=True)
    order = np.argsort(np.argsort(first))
    _, inverse = np.unique(assignment, return_inverse=True)
    return order[inverse]


def cluster_taxonomy(labels: list[str], levels: list[np.ndarray]) -> LabelTaxonomy:
    """The taxonomy with ``labels`` as leaves under cluster nodes ``"l<level>:c<k>"``: ``levels[j][i]`` is
    label ``i``'s cluster at level ``j`` (finest first), numbered ``0..k_j - 1`` and nested (labels sharing a
    cluster share its coarser clusters). Label ids come first, in order, then the clusters, coarsest first."""
    edges = [(cluster_name(0, int(c)), label) for label, c in zip(labels, levels[0])]
    for level in range(1, len(levels)):
        pairs = dict.fromkeys(zip(levels[level].tolist(), levels[level - 1].tolist()))
        edges += [(cluster_name(level, coarse), cluster_name(level - 1, fine)) for coarse, fine in pairs]
    clusters = [
        cluster_name(level, c) for level in range(len(levels) - 1, -1, -1) for c in range(levels[level].max() + 1)
    ]
    return LabelTaxonomy(labels + clusters, edges)


# ---------------------------------------------------------------------------------------------- k-means


@dataclass(frozen=True)
class HierarchicalClustering:
    """Result of :func:`hierarchical_kmeans`.

    Attributes:
        taxonomy: clusters ``"l<level>:c<k>"``; level 0 (finest) are the leaves, the coarsest are the roots.
        assignments: LongTensor ``[n, num_levels]``: column ``j`` is each example's cluster at level ``j``.
        centroids: per level, a float tensor ``[k_j, dim]`` (level 0 in the space of the clustered
            embeddings, level ``j > 0`` in the space of level ``j - 1``'s normalised centroids).
    """

    taxonomy: LabelTaxonomy
    assignments: torch.Tensor
    centroids: list[torch.Tensor]

    def label_sets(self) -> list[list[str]]:
        """Each example's finest cluster as a one-label set (``taxonomy.encode`` adds the coarser ones)."""
        return [[cluster_name(0, int(c))] for c in self.assignments[:, 0].tolist()]


def hierarchical_kmeans(
    embeddings: Any,
    n_clusters: int | Sequence[int],
    seed: int = 0,
    normalize: bool = True,
    minibatch: bool | None = None,
    n_init: int = 4,
) -> HierarchicalClustering:
    """Cluster embeddings into a hierarchy with k-means, finest level first.

    Level 0 runs k-means with ``k_1`` clusters on the (L2-normalised, if ``normalize``) embeddings; level
    ``j`` runs k-means with ``k_{j+1}`` clusters on level ``j - 1``'s L2-normalised centroids, so a coarse
    cluster is a group of finer clusters and ``k_1 > k_2 > ...`` must hold. Example assignments are composed
    fine to coarse. ``minibatch`` (default: above ``MINIBATCH_ABOVE`` points) uses ``MiniBatchKMeans``.
    """
    points = _embedding_matrix(embeddings)
    ks = _decreasing_counts(n_clusters, points.shape[0], "points")
    use_minibatch = points.shape[0] > MINIBATCH_ABOVE if minibatch is None else minibatch
    points = _l2_normalise(points) if normalize else points
    columns: list[np.ndarray] = []
    centroids: list[torch.Tensor] = []
    parents: list[np.ndarray] = []
    for level, k in enumerate(ks):
        model_class = MiniBatchKMeans if use_minibatch and level == 0 else KMeans
        model = model_class(n_clusters=k, random_state=seed, n_init=n_init)
        assigned = model.fit_predict(points)
        columns.append(assigned if level == 0 else assigned[columns[-1]])
        if level:
            parents.append(assigned)
        centroids.append(torch.from_numpy(model.cluster_centers_.astype(np.float32)))
        points = _l2_normalise(model.cluster_centers_)
    labels = [cluster_name(level, c) for level in range(len(ks) - 1, -1, -1) for c in range(ks[level])]
    edges = [
        (cluster_name(level, int(coarse)), cluster_name(level - 1, fine))
        for level, assigned in enumerate(parents, start=1)
        for fine, coarse in enumerate(assigned)
    ]
    assignments = torch.from_numpy(np.stack(columns, axis=1).astype(np.int64))
    return HierarchicalClustering(LabelTaxonomy(labels, edges), assignments, centroids)


def kmeans_label_taxonomy(
    label_vectors: Any, names: Sequence[str] | None, n_clusters: int | Sequence[int], seed: int = 0
) -> LabelTaxonomy:
    """A taxonomy whose leaves are the labels and whose inner nodes are k-means clusters of their vectors.

    ``label_vectors`` ``[n_labels, dim]`` holds one vector per label (e.g. the mean embedding of the
    examples holding it); :func:`hierarchical_kmeans` clusters them (L2-normalised, ``n_clusters`` finest
    first), and each label goes under its cluster at every level. Label ids ``0 .. n_labels - 1`` stay
    those of the rows; the cluster nodes ``"l<level>:c<k>"`` follow, numbered by the first label they hold.
    """
    clustering = hierarchical_kmeans(label_vectors, n_clusters, seed=seed, minibatch=False)
    labels = _names(names, clustering.assignments.shape[0])
    levels = _nest_levels(list(clustering.assignments.numpy().T))
    return cluster_taxonomy(labels, levels)


# ---------------------------------------------------------------------------------------------- input checks


def _decreasing_counts(n_clusters: int | Sequence[int], available: int, what: str) -> list[int]:
    ks = [n_clusters] if isinstance(n_clusters, Integral) else list(n_clusters)
    if not ks or not all(isinstance(k, Integral) and k >= 1 for k in ks):
        raise HierconError(f"n_clusters must be positive integers, got {n_clusters!r}")
    if any(b >= a for a, b in zip(ks, ks[1:])):
        raise HierconError(f"n_clusters must be strictly decreasing (finest level first), got {list(ks)}")
    if ks[0] > available:
        raise HierconError(f"more clusters than {what}: n_clusters={ks[0]} but only {available} {what}")
    return [int(k) for k in ks]


def _binary_matrix(multi_hot: Any) -> np.ndarray:
    matrix = _as_numpy(multi_hot)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise HierconError(f"expected a non-empty multi-hot matrix [n_examples, n_labels], got {matrix.shape}")
    check_multi_hot(matrix, "multi-hot matrix", error=HierconError)
    return matrix.astype(np.float64)


def _embedding_matrix(embeddings: Any) -> np.ndarray:
    points = _as_numpy(embeddings).astype(np.float64)
    if points.ndim != 2 or points.shape[0] == 0:
        raise HierconError(f"expected embeddings of shape [n, dim], got {points.shape}")
    if not np.isfinite(points).all():
        raise HierconError("embeddings hold NaN or infinite values")
    return points


def _as_numpy(values: Any) -> np.ndarray:
    if torch.is_tensor(values):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _l2_normalise(points: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return points / np.maximum(norms, 1e-12)


def _names(names: Sequence[str] | None, count: int) -> list[str]:
    if names is None:
        return [f"label_{i}" for i in range(count)]
    result = [str(name) for name in names]
    if len(result) != count:
        raise HierconError(f"{len(result)} names given for {count} label columns")
    return result
