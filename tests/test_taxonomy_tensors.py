"""LabelTaxonomy tensors and label sets: ancestor matrices, levels, leaf paths, similarity, encode/decode,
closure, level views and score consistency, on the hand-checked DAG of test_taxonomy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercon import LabelTaxonomy
from hiercon.errors import HierconError, TaxonomyError, UnknownLabelError

# ids: animal 0, plant 1, mammal 2, bird 3, flyer 4, dog 5, bat 6, eagle 7, puppy 8 (bat under mammal and flyer)
EDGES = [
    ("root", "animal"), ("root", "plant"), ("animal", "mammal"), ("animal", "bird"), ("animal", "flyer"),
    ("mammal", "dog"), ("mammal", "bat"), ("flyer", "bat"), ("bird", "eagle"), ("dog", "puppy"),
]
ANIMAL, PLANT, MAMMAL, BIRD, FLYER, DOG, BAT, EAGLE, PUPPY = range(9)


@pytest.fixture(scope="module")
def dag() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(EDGES)


def test_ancestor_matrix_marks_self_and_every_ancestor(dag):
    matrix = dag.ancestor_matrix
    assert matrix.dtype == torch.bool and matrix.shape == (9, 9)
    assert torch.nonzero(matrix[BAT]).flatten().tolist() == [ANIMAL, MAMMAL, FLYER, BAT]
    assert torch.nonzero(matrix[PUPPY]).flatten().tolist() == [ANIMAL, MAMMAL, DOG, PUPPY]
    assert torch.nonzero(matrix[PLANT]).flatten().tolist() == [PLANT]
    assert int(matrix.sum()) == 1 + 1 + 2 + 2 + 2 + 3 + 4 + 3 + 4
    assert dag.ancestor_matrix is matrix  # cached


def test_sparse_ancestor_matrix_equals_dense(dag):
    sparse = dag.ancestor_matrix_sparse
    assert sparse.is_sparse and sparse.is_coalesced()
    assert torch.equal(sparse.to_dense().bool(), dag.ancestor_matrix)


def test_dense_matrices_refuse_huge_taxonomies_and_point_to_sparse_forms():
    flat = LabelTaxonomy.from_labels([f"l{i}" for i in range(5)])
    flat.max_dense_labels = 4
    with pytest.raises(TaxonomyError, match=r"dense 5 x 5 matrix.*use ancestor_matrix_sparse"):
        _ = flat.ancestor_matrix
    with pytest.raises(TaxonomyError, match=r"use similarity_rows"):
        _ = flat.similarity_matrix
    assert flat.ancestor_matrix_sparse.to_dense().trace() == 5
    assert torch.equal(flat.similarity_rows([2]), torch.eye(5)[2:3])


def test_levels_leaf_ids_edge_index(dag):
    assert dag.levels.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert dag.levels.dtype == torch.long
    assert dag.leaf_ids.tolist() == [PLANT, BAT, EAGLE, PUPPY]
    assert dag.level_ids(1).tolist() == [MAMMAL, BIRD, FLYER]
    parents, children = dag.edge_index.tolist()
    assert sorted(zip(parents, children)) == sorted((dag.index(p), dag.index(c)) for p, c in EDGES[2:])


def test_leaf_paths_are_coarse_to_fine_and_padded_with_the_leaf(dag):
    assert dag.leaf_paths.tolist() == [
        [PLANT, PLANT, PLANT, PLANT],
        [ANIMAL, MAMMAL, BAT, BAT],  # the DAG leaf follows its smallest-id parent
        [ANIMAL, BIRD, EAGLE, EAGLE],
        [ANIMAL, MAMMAL, DOG, PUPPY],
    ]


def test_similarity_matrix_hand_checked(dag):
    sim = dag.similarity_matrix
    assert sim.shape == (9, 9) and torch.allclose(sim.diagonal(), torch.ones(9))
    assert torch.allclose(sim, sim.T)
    expected = {
        (PUPPY, BAT): 2 / 4,  # lca mammal at depth 1, deeper label puppy at depth 3
        (BAT, EAGLE): 1 / 3,  # lca animal
        (BAT, FLYER): 2 / 3,  # flyer is an ancestor of bat
        (DOG, PUPPY): 3 / 4,
        (PLANT, DOG): 0.0,  # no common ancestor
        (MAMMAL, BIRD): 1 / 2,
    }
    for (a, b), value in expected.items():
        assert sim[a, b].item() == pytest.approx(value)
    assert torch.allclose(dag.similarity_rows([PUPPY, BAT]), sim[[PUPPY, BAT]])
    assert ((sim >= 0) & (sim <= 1)).all()


def test_encode_closes_label_sets_over_ancestors(dag):
    encoded = dag.encode([["bat"], ["puppy", "plant"], [], None, "eagle", [PUPPY, "dog"], torch.tensor(7)])
    assert encoded.dtype == torch.float32 and encoded.shape == (7, 9)
    rows = [torch.nonzero(row).flatten().tolist() for row in encoded]
    assert rows == [
        [ANIMAL, MAMMAL, FLYER, BAT],
        [ANIMAL, PLANT, MAMMAL, DOG, PUPPY],
        [],
        [],
        [ANIMAL, BIRD, EAGLE],
        [ANIMAL, MAMMAL, DOG, PUPPY],
        [ANIMAL, BIRD, EAGLE],
    ]
    assert dag.encode([["bat"]], closure=False)[0].nonzero().flatten().tolist() == [BAT]
    assert torch.equal(dag.encode([["bat"]]), dag.ancestor_matrix[BAT : BAT + 1].float())


def test_encode_rejects_unknown_labels_naming_them(dag):
    with pytest.raises(UnknownLabelError, match=r"unknown label 'pupy' in label set #1 \(did you mean 'puppy'\?\)"):
        dag.encode([["dog"], ["pupy"]])
    with pytest.raises(UnknownLabelError, match=r"label id 12 in label set #0 is out of range"):
        dag.encode([[12]])
    with pytest.raises(UnknownLabelError, match=r"label set #0 must be an iterable"):
        dag.encode([3.5])


def test_decode_and_closure(dag):
    encoded = dag.encode([["bat"], ["plant"]])
    assert dag.decode(encoded) == [["animal", "mammal", "flyer", "bat"], ["plant"]]
    assert dag.decode(encoded[0]) == ["animal", "mammal", "flyer", "bat"]
    scores = torch.full((9,), 0.2)
    scores[[DOG, EAGLE]] = torch.tensor([0.6, 0.4])
    assert dag.decode(scores) == ["dog"]
    assert dag.decode(scores, threshold=0.3) == ["dog", "eagle"]
    per_label = torch.full((9,), 0.5)
    per_label[EAGLE] = 0.1
    assert dag.decode(scores.numpy(), threshold=per_label) == ["dog", "eagle"]
    assert dag.closure([["puppy"], []]) == [["animal", "mammal", "dog", "puppy"], []]
    with pytest.raises(HierconError, match=r"expected scores of shape \[n, 9\] or \[9\], got \(2, 4\)"):
        dag.decode(torch.zeros(2, 4))
    with pytest.raises(HierconError, match=r"3 thresholds given for 9 labels"):
        dag.decode(scores, threshold=[0.1, 0.2, 0.3])


def test_level_views(dag):
    assert dag.encode_level([["bat"], ["eagle"], ["plant"]], 1).tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    leaves_only = dag.encode([["bat"], ["puppy"]], closure=False)
    assert dag.project(leaves_only, 1).tolist() == [[1, 0, 1], [1, 0, 0]]
    assert dag.project(leaves_only, 0).tolist() == [[1, 0], [1, 0]]
    scores = torch.tensor([0.1, 0.0, 0.2, 0.3, 0.1, 0.4, 0.9, 0.5, 0.7])
    assert dag.project(scores, 1).tolist() == pytest.approx([0.9, 0.5, 0.9])
    assert dag.project(scores, 0).tolist() == pytest.approx([0.9, 0.0])


def test_make_consistent_caps_children_by_their_ancestors(dag):
    scores = torch.tensor([[0.5, 0.9, 0.8, 0.1, 0.3, 0.7, 0.6, 0.2, 0.95]])
    repaired = dag.make_consistent(scores)
    assert repaired.tolist()[0] == pytest.approx([0.5, 0.9, 0.5, 0.1, 0.3, 0.5, 0.3, 0.1, 0.5])
    assert dag.is_consistent(scores).tolist() == [False]
    assert dag.is_consistent(repaired).tolist() == [True]
    assert torch.equal(dag.make_consistent(repaired), repaired)


def test_make_consistent_matches_the_definition_on_random_scores(dag):
    scores = torch.rand(64, 9, generator=torch.Generator().manual_seed(1))
    repaired = dag.make_consistent(scores)
    ancestors = dag.ancestor_matrix
    expected = torch.stack([scores[:, ancestors[i]].min(dim=1).values for i in range(9)], dim=1)
    assert torch.allclose(repaired, expected)
    assert dag.is_consistent(repaired).all()
    assert dag.is_consistent(dag.encode([["bat"], ["puppy", "eagle"]])).all()
    assert not dag.is_consistent(dag.encode([["bat"]], closure=False)).any()


def test_consistency_accepts_1d_numpy_and_keeps_gradients(dag):
    row = np.linspace(0, 1, 9)
    assert dag.is_consistent(row).dim() == 0
    assert dag.make_consistent(row).shape == (9,)
    scores = torch.rand(3, 9, requires_grad=True)
    dag.make_consistent(scores).sum().backward()
    assert scores.grad is not None and scores.grad.sum() == pytest.approx(27.0)


def test_tensors_scale_to_a_ten_thousand_label_dag():
    rng = np.random.default_rng(0)
    size = 10_000
    edges = [(f"n{int(rng.integers(0, i))}", f"n{i}") for i in range(1, size)]
    edges += [(f"n{int(rng.integers(0, i - 1))}", f"n{i}") for i in range(2, size, 97)]
    taxonomy = LabelTaxonomy.from_edges(dict.fromkeys(edges))
    sparse = taxonomy.ancestor_matrix_sparse
    ancestors = set(taxonomy.ancestors("n9999"))
    row = sparse.index_select(0, torch.tensor([taxonomy.index("n9999")])).coalesce().indices()[1]
    assert {taxonomy.label(i) for i in row.tolist()} == ancestors | {"n9999"}
    paths = taxonomy.leaf_paths
    assert paths.shape == (len(taxonomy.leaves), taxonomy.num_levels)
    assert (taxonomy.levels[paths[:, 0]] == 0).all()
