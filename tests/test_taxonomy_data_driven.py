"""Data-driven hierarchies recover known structure from synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from hiercon.errors import HierconError
from hiercon.taxonomy import (
    HierarchicalClustering,
    LabelTaxonomy,
    agglomerative_taxonomy,
    cooccurrence_graph,
    hierarchical_kmeans,
)


def nested_blobs(per_blob: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two well-separated super-blobs (orthogonal directions), each holding three sub-blobs."""
    rng = np.random.default_rng(seed)
    points, fine, coarse = [], [], []
    for group in range(2):
        for sub in range(3):
            centre = np.zeros(8)
            centre[group] = 10.0
            centre[2 + 3 * group + sub] = 3.0
            points.append(centre + 0.1 * rng.standard_normal((per_blob, 8)))
            fine += [3 * group + sub] * per_blob
            coarse += [group] * per_blob
    return np.concatenate(points), np.array(fine), np.array(coarse)


def test_hierarchical_kmeans_recovers_nested_blobs():
    points, fine, coarse = nested_blobs()
    result = hierarchical_kmeans(torch.from_numpy(points), n_clusters=(6, 2), seed=0)
    assert isinstance(result, HierarchicalClustering)
    assert result.assignments.shape == (120, 2) and result.assignments.dtype == torch.long
    assert adjusted_rand_score(fine, result.assignments[:, 0].numpy()) == 1.0
    assert adjusted_rand_score(coarse, result.assignments[:, 1].numpy()) == 1.0
    taxonomy = result.taxonomy
    assert taxonomy.num_labels == 8 and taxonomy.num_levels == 2
    assert taxonomy.roots == ["l1:c0", "l1:c1"]
    assert sorted(len(taxonomy.children(root)) for root in taxonomy.roots) == [3, 3]
    for fine_cluster, coarse_cluster in result.assignments.tolist():
        assert taxonomy.parents(f"l0:c{fine_cluster}") == [f"l1:c{coarse_cluster}"]
    assert [c.shape for c in result.centroids] == [(6, 8), (2, 8)]
    encoded = taxonomy.encode(result.label_sets())
    assert encoded.sum(dim=1).tolist() == [2.0] * 120


def test_hierarchical_kmeans_minibatch_and_three_levels():
    points, fine, coarse = nested_blobs(per_blob=10, seed=1)
    result = hierarchical_kmeans(points, n_clusters=(6, 2, 1), minibatch=True, normalize=False, n_init=1)
    assert result.taxonomy.roots == ["l2:c0"] and result.taxonomy.num_levels == 3
    assert adjusted_rand_score(coarse, result.assignments[:, 1].numpy()) == 1.0
    assert (result.assignments[:, 2] == 0).all()


@pytest.mark.parametrize(
    ("n_clusters", "match"),
    [
        ((3, 5), r"strictly decreasing \(finest level first\), got \[3, 5\]"),
        ((4, 4), r"strictly decreasing"),
        ((200, 2), r"more clusters than points: n_clusters=200 but only 120 points"),
        ((0,), r"positive integers"),
    ],
)
def test_hierarchical_kmeans_rejects_bad_cluster_counts(n_clusters, match):
    points, _, _ = nested_blobs()
    with pytest.raises(HierconError, match=match):
        hierarchical_kmeans(points, n_clusters=n_clusters)


def test_hierarchical_kmeans_rejects_bad_embeddings():
    with pytest.raises(HierconError, match=r"NaN or infinite"):
        hierarchical_kmeans(np.full((5, 2), np.nan), n_clusters=(2,))
    with pytest.raises(HierconError, match=r"shape \[n, dim\]"):
        hierarchical_kmeans(np.zeros(5), n_clusters=(2,))


def block_labels() -> tuple[np.ndarray, list[str]]:
    """Labels that always co-occur in blocks: {a1, a2}, {b1, b2}, {c1}; blocks a and b often go together."""
    names = ["a1", "b1", "c1", "a2", "b2"]
    rows = {"a": [1, 0, 0, 1, 0], "b": [0, 1, 0, 0, 1], "ab": [1, 1, 0, 1, 1], "c": [0, 0, 1, 0, 0]}
    matrix = np.array([rows[kind] for kind in ["a"] * 30 + ["b"] * 30 + ["ab"] * 30 + ["c"] * 30])
    return matrix, names


def test_agglomerative_taxonomy_recovers_blocks_and_their_grouping():
    matrix, names = block_labels()
    taxonomy = agglomerative_taxonomy(matrix, names, n_clusters=[3, 2])
    assert taxonomy.labels[:5] == names  # input columns keep their ids
    assert sorted(taxonomy.leaves) == sorted(names)
    assert taxonomy.parents("a1") == taxonomy.parents("a2") != taxonomy.parents("b1")
    assert taxonomy.parents("b1") == taxonomy.parents("b2") != taxonomy.parents("c1")
    assert taxonomy.lowest_common_ancestor("a1", "b2") is not None
    assert taxonomy.lowest_common_ancestor("a1", "c1") is None
    assert taxonomy.num_levels == 3 and len(taxonomy.roots) == 2
    assert taxonomy.parents("a1") == ["l0:c0"] and taxonomy.parents("l0:c0") == ["l1:c0"]


def test_agglomerative_taxonomy_with_distance_threshold():
    matrix, names = block_labels()
    taxonomy = agglomerative_taxonomy(torch.from_numpy(matrix), names, distance_threshold=0.5)
    assert taxonomy.level_labels(0) == ["l0:c0", "l0:c1", "l0:c2"]
    assert taxonomy.children("l0:c0") == ["a1", "a2"]
    assert isinstance(taxonomy, LabelTaxonomy)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"exactly one of n_clusters or distance_threshold"),
        ({"n_clusters": 2, "distance_threshold": 0.5}, r"exactly one"),
        ({"n_clusters": [2, 3]}, r"strictly decreasing"),
        ({"n_clusters": 9}, r"more clusters than labels: n_clusters=9 but only 5 labels"),
        ({"distance_threshold": [0.8, 0.2]}, r"strictly increasing"),
        ({"n_clusters": 2, "linkage": "ward"}, r"ward"),
    ],
)
def test_agglomerative_taxonomy_rejects_bad_options(kwargs, match):
    matrix, names = block_labels()
    with pytest.raises(HierconError, match=match):
        agglomerative_taxonomy(matrix, names, **kwargs)


def test_cooccurrence_graph_counts_jaccard_and_npmi():
    matrix = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]])
    graph = cooccurrence_graph(matrix, names=["x", "y", "z"])
    assert dict(graph.nodes(data="count")) == {"x": 3, "y": 2, "z": 1}
    assert list(graph.edges) == [("x", "y")]
    edge = graph.edges["x", "y"]
    assert edge["weight"] == 2
    assert edge["jaccard"] == pytest.approx(2 / 3)
    p_xy, p_x, p_y = 2 / 4, 3 / 4, 2 / 4
    assert edge["npmi"] == pytest.approx(math.log(p_xy / (p_x * p_y)) / -math.log(p_xy))
    assert cooccurrence_graph(matrix, min_count=3).number_of_edges() == 0
    assert list(cooccurrence_graph(matrix).nodes) == ["label_0", "label_1", "label_2"]


def test_cooccurrence_graph_rejects_bad_matrices():
    with pytest.raises(HierconError, match=r"values 0 or 1 only"):
        cooccurrence_graph(np.array([[0.5, 1.0]]))
    with pytest.raises(HierconError, match=r"2 names given for 3 label columns"):
        cooccurrence_graph(np.eye(3), names=["a", "b"])
    with pytest.raises(HierconError, match=r"non-empty multi-hot matrix"):
        cooccurrence_graph(np.zeros((0, 3)))


def test_the_cluster_losses_and_the_cluster_callback_share_this_k_means():
    from hiercon.losses.clustering import kmeans_clusters
    from hiercon.training import ClusterCallback

    points, fine, coarse = nested_blobs(per_blob=10, seed=2)
    reference = hierarchical_kmeans(points, n_clusters=(6, 2), seed=3)
    flat = kmeans_clusters(torch.from_numpy(points), 6, seed=3)
    assert torch.equal(flat, reference.assignments[:, 0])
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    assignments, centroids = ClusterCallback._hierarchical_kmeans(unit, (6, 2), seed=3)
    np.testing.assert_array_equal(assignments, reference.assignments.numpy())
    assert [c.shape for c in centroids] == [(6, 8), (2, 8)]
    np.testing.assert_allclose(np.linalg.norm(centroids[1], axis=1), 1.0, rtol=1e-6)
    assert adjusted_rand_score(coarse, assignments[:, 1]) == 1.0
