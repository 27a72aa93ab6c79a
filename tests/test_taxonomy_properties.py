"""Properties of LabelTaxonomy on random DAGs: round trips, ancestor tensors against networkx, consistency."""

from __future__ import annotations

import networkx as nx
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hiercon import LabelTaxonomy


@st.composite
def random_dags(draw: st.DrawFn) -> LabelTaxonomy:
    """Labels n0..n{k-1}; each later label gets one to three distinct earlier parents, or none (a root)."""
    size = draw(st.integers(min_value=1, max_value=14))
    edges = []
    for child in range(1, size):
        parents = draw(st.sets(st.integers(min_value=0, max_value=child - 1), max_size=min(3, child)))
        edges += [(f"n{parent}", f"n{child}") for parent in sorted(parents)]
    return LabelTaxonomy([f"n{i}" for i in range(size)], edges)


@settings(max_examples=40, deadline=None)
@given(random_dags())
def test_round_trips_preserve_the_taxonomy(taxonomy):
    assert LabelTaxonomy.from_dict(taxonomy.to_dict()) == taxonomy
    assert LabelTaxonomy.from_json(taxonomy.to_json()) == taxonomy
    assert LabelTaxonomy.from_networkx(taxonomy.to_networkx()) == taxonomy
    assert LabelTaxonomy.from_edges(taxonomy.to_edges(root="root")) == taxonomy


@settings(max_examples=40, deadline=None)
@given(random_dags())
def test_ancestor_tensors_agree_with_networkx(taxonomy):
    graph = taxonomy.to_networkx()
    for name in taxonomy:
        row = taxonomy.ancestor_matrix[taxonomy.index(name)]
        assert set(taxonomy.labels[i] for i in torch.nonzero(row).flatten().tolist()) == nx.ancestors(graph, name) | {
            name
        }
        longest = max((len(path) - 1 for path in taxonomy.paths_to_root(name)), default=0)
        assert taxonomy.depth(name) == longest
    for path in taxonomy.leaf_paths.tolist():
        ids = list(dict.fromkeys(path))
        assert all(taxonomy.labels[a] in taxonomy.parents(taxonomy.labels[b]) for a, b in zip(ids, ids[1:]))
    sim = taxonomy.similarity_matrix
    assert torch.allclose(sim, sim.T) and torch.allclose(sim.diagonal(), torch.ones(len(taxonomy)))


@settings(max_examples=40, deadline=None)
@given(random_dags(), st.integers(min_value=0, max_value=2**16))
def test_make_consistent_is_a_consistent_fixed_point(taxonomy, seed):
    scores = torch.rand(5, len(taxonomy), generator=torch.Generator().manual_seed(seed))
    repaired = taxonomy.make_consistent(scores)
    assert taxonomy.is_consistent(repaired).all()
    assert torch.equal(taxonomy.make_consistent(repaired), repaired)
    assert (repaired <= scores).all()
    assert torch.equal(taxonomy.is_consistent(scores), (repaired == scores).all(dim=1))
    closed = taxonomy.encode([[label] for label in taxonomy])
    assert taxonomy.is_consistent(closed).all()
    assert torch.equal(closed.bool(), taxonomy.ancestor_matrix)
