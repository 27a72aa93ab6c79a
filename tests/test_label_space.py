"""LabelSpace: every label format gives the same multi-hot, and the structure operations agree with
slow references written from their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercon import LabelSpace, LabelTaxonomy
from hiercon.errors import LabelFormatError, LossInputError, UnknownLabelError

EDGES = [("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2"), ("b2", "b2x"), ("b2", "b2y")]


@pytest.fixture()
def taxonomy() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(EDGES)


def reference_closure(taxonomy: LabelTaxonomy, names: list[str]) -> set[str]:
    closed = set(names)
    for name in names:
        closed.update(taxonomy.ancestors(name))
    return closed


def test_columns_of_each_space(taxonomy) -> None:
    nodes, leaves = LabelSpace(taxonomy, "nodes"), LabelSpace(taxonomy, "leaves")
    assert nodes.names == taxonomy.labels
    assert leaves.names == taxonomy.leaves == ["a1", "a2", "b1", "b2x", "b2y"]
    assert nodes.closes_ancestors and not leaves.closes_ancestors
    flat = LabelSpace.flat(["x", "y"])
    assert flat.is_flat and flat.names == ["x", "y"] and not flat.closes_ancestors
    assert LabelSpace.for_names(taxonomy.leaves, taxonomy) == leaves
    assert LabelSpace.for_names(taxonomy.labels, taxonomy) == nodes
    with pytest.raises(LabelFormatError, match="neither the taxonomy's"):
        LabelSpace.for_names(["a1", "a"], taxonomy)


@pytest.mark.parametrize("columns", ["nodes", "leaves"])
def test_every_format_gives_the_same_multi_hot(taxonomy, columns) -> None:
    space = LabelSpace(taxonomy, columns)
    label_sets = [["a1"], ["a2", "b2x"], [], ["b1"]]
    expected = space.encode(label_sets)
    for row, names in zip(expected, label_sets):
        wanted = reference_closure(taxonomy, names) if columns == "nodes" else set(names)
        assert {space.names[i] for i in row.nonzero().flatten().tolist()} == wanted
    node_rows = LabelSpace(taxonomy, "nodes").encode(label_sets)
    leaf_rows = LabelSpace(taxonomy, "leaves").encode(label_sets)
    paths = [["a/a1"], ["a/a2", "b/b2/b2x"], [], "b/b1"]
    assert torch.equal(space.multi_hot(label_sets), expected)
    assert torch.equal(space.multi_hot(paths), expected)
    assert torch.equal(space.multi_hot(node_rows), expected)
    assert torch.equal(space.multi_hot(leaf_rows), expected)
    assert torch.equal(space.multi_hot(leaf_rows.tolist()), expected)
    assert np.array_equal(space.multi_hot(node_rows.numpy()), expected.numpy())
    single = [["a1"], ["b1"]]
    ids = torch.tensor([space.index("a1"), space.index("b1")])
    assert torch.equal(space.multi_hot(ids), space.encode(single))
    assert torch.equal(space.multi_hot(ids.tolist()), space.encode(single))


def test_refusals_name_the_problem(taxonomy) -> None:
    leaves = LabelSpace(taxonomy, "leaves")
    with pytest.raises(UnknownLabelError, match="did you mean 'a1'"):
        leaves.multi_hot([["a11"]])
    with pytest.raises(UnknownLabelError, match="not one of the leaves"):
        leaves.multi_hot([["b2"]])
    with pytest.raises(LabelFormatError, match="multi-hot over the 8 taxonomy nodes or its 5 leaves"):
        leaves.multi_hot(torch.ones(2, 3))
    with pytest.raises(LabelFormatError, match="0 or 1"):
        leaves.multi_hot(torch.full((2, 5), 0.5))
    with pytest.raises(LabelFormatError, match="outside the label space's ids 0..4"):
        leaves.multi_hot(torch.tensor([0, 7]))
    # one error type for the loss, trainer and recipe layers
    assert issubclass(LabelFormatError, LossInputError)


def test_lift_is_the_max_over_descendants(taxonomy) -> None:
    leaves = LabelSpace(taxonomy, "leaves")
    scores = torch.rand(4, leaves.num_labels, dtype=torch.float64)
    lifted = leaves.lift(scores)
    for node in taxonomy.labels:
        below = [leaf for leaf in leaves.names if leaf == node or leaf in taxonomy.descendants(node)]
        expected = scores[:, [leaves.index(leaf) for leaf in below]].amax(dim=1)
        assert torch.allclose(lifted[:, taxonomy.index(node)], expected)
    nodes = LabelSpace(taxonomy, "nodes")
    assert torch.allclose(nodes.restrict(lifted), nodes.lift(nodes.restrict(lifted)))
    assert torch.allclose(leaves.restrict(lifted), scores)


def test_to_nodes_restrict_and_levels(taxonomy) -> None:
    leaves, nodes = LabelSpace(taxonomy, "leaves"), LabelSpace(taxonomy, "nodes")
    rows = leaves.encode([["a1", "b2y"], []])
    as_nodes = leaves.to_nodes(rows)
    assert torch.equal(as_nodes, nodes.encode([["a1", "b2y"], []]))
    assert torch.equal(leaves.restrict(as_nodes), rows)
    assert leaves.level_names(0) == ["a", "b"]
    assert leaves.level(rows, 0).tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert leaves.level(rows, 1).tolist() == [[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]


def test_paths_follow_the_deepest_label(taxonomy) -> None:
    nodes = LabelSpace(taxonomy, "nodes")
    rows = nodes.encode([["a1"], ["b1", "b2x"], [], ["a"]])
    index = taxonomy.index
    assert nodes.paths(rows).tolist() == [
        [index("a"), index("a1"), index("a1")],
        [index("b"), index("b2"), index("b2x")],
        [-1, -1, -1],
        [index("a"), index("a"), index("a")],
    ]
    for label in taxonomy.labels:
        path = taxonomy.node_paths[index(label)].tolist()
        chain = [taxonomy.label(i) for i in dict.fromkeys(path)]
        assert chain == [*taxonomy.ancestors(label), label]


def test_most_specific_and_consistency(taxonomy) -> None:
    nodes = LabelSpace(taxonomy, "nodes")
    rows = nodes.encode([["a1", "b2"], ["b2x"]])
    kept = nodes.most_specific(rows)
    assert nodes.decode(kept) == [["a1", "b2"], ["b2x"]]
    scores = torch.rand(5, nodes.num_labels)
    repaired = nodes.consistent(scores)
    assert bool(nodes.is_consistent((repaired >= 0.5).float()).all())
    leaves = LabelSpace(taxonomy, "leaves")
    leaf_scores = np.random.default_rng(0).random((3, leaves.num_labels))
    assert np.array_equal(leaves.consistent(leaf_scores), leaf_scores)


def test_consistent_predictions_close_the_thresholded_columns(taxonomy) -> None:
    nodes = LabelSpace(taxonomy, "nodes")
    scores = np.random.default_rng(1).random((64, nodes.num_labels))
    thresholds = np.linspace(0.3, 0.7, nodes.num_labels)
    raw = (scores >= thresholds).astype(np.float32)
    used, closed = nodes.consistent_predictions(scores, thresholds)
    assert np.array_equal(used, scores) and np.array_equal(closed, nodes.close(raw))
    assert bool(nodes.is_consistent(closed).all())
    leaf_columns = np.isin(nodes.names, taxonomy.leaves)
    assert np.array_equal(closed[:, leaf_columns], raw[:, leaf_columns])  # fine labels: their own thresholds
    repaired, picked = nodes.consistent_predictions(torch.as_tensor(scores), thresholds, repair_scores=True)
    assert torch.equal(repaired, nodes.consistent(torch.as_tensor(scores)))
    assert bool(nodes.is_consistent(picked).all()) and bool((picked <= torch.as_tensor(closed)).all())
    leaves = LabelSpace(taxonomy, "leaves")
    leaf_scores = scores[:, : leaves.num_labels]
    assert np.array_equal(leaves.consistent_predictions(leaf_scores, 0.5)[1], (leaf_scores >= 0.5).astype(np.float32))


def test_similarity_restricted_to_the_columns(taxonomy) -> None:
    leaves = LabelSpace(taxonomy, "leaves")
    similarity = leaves.similarity()
    assert similarity.shape == (5, 5) and torch.equal(similarity.diagonal(), torch.ones(5))
    full = taxonomy.similarity_matrix
    ids = taxonomy.leaf_ids
    assert torch.equal(similarity, full[ids][:, ids])


def test_a_label_whose_name_holds_the_path_separator_is_read_as_a_name() -> None:
    taxonomy = LabelTaxonomy.from_edges([("tops", "T - shirt / top"), ("tops", "Shirt"), ("goods", "Bag")])
    space = LabelSpace(taxonomy, "nodes")
    rows = space.multi_hot([["T - shirt / top"], ["goods/Bag"]])
    assert space.decode(rows) == [["tops", "T - shirt / top"], ["goods", "Bag"]]
    with pytest.raises(UnknownLabelError, match="' top'"):
        space.multi_hot([["tops/T - shirt / top"]])
