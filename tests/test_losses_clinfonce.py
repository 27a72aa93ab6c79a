"""Cl-InfoNCE (Tsai et al. 2022) and the cluster builders: loop reference, special cases, GoEmotions."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_hierarchical import supcon as supcon_reference

from hiercon import LabelTaxonomy
from hiercon.errors import LossInputError
from hiercon.losses import ClInfoNCELoss, SupConLoss
from hiercon.losses.clustering import (
    attribute_clusters,
    attribute_entropies,
    kmeans_clusters,
    taxonomy_level_clusters,
    taxonomy_level_nodes,
)

DIM = 5
PROPERTY_SETTINGS = settings(max_examples=15, deadline=None)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


def _cluster_sets(labels: torch.Tensor) -> list[set[int]]:
    if labels.dim() == 1:
        return [{int(c)} if c >= 0 else set() for c in labels]
    return [{int(c) for c in row.nonzero().flatten()} for row in labels]


def _check_against_reference(embeddings: torch.Tensor, labels: torch.Tensor, **options) -> None:
    inputs = embeddings.detach().clone().requires_grad_(True)
    value = ClInfoNCELoss(**options)(inputs, labels)
    (grad,) = torch.autograd.grad(value, inputs)
    sets = _cluster_sets(labels)
    reference_inputs = embeddings.detach().clone().requires_grad_(True)
    expected = supcon_reference(
        reference_inputs,
        lambda i, j: bool(sets[i] & sets[j]),
        tau=options.get("temperature", 0.1),
        base_tau=options.get("base_temperature"),
        own_views=False,
    )
    (expected_grad,) = torch.autograd.grad(expected, reference_inputs)
    _close(value.detach(), expected.detach())
    _close(grad, expected_grad)


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((8, 2), {}),
        ((6, 1), {"temperature": 0.2}),
        ((5, 3), {"base_temperature": 0.07}),
        ((1, 2), {}),
        ((1, 1), {}),
    ],
)
@pytest.mark.parametrize("multi_hot", [False, True])
def test_matches_reference(shape: tuple[int, int], options: dict, multi_hot: bool) -> None:
    batch, views = shape
    generator = torch.Generator().manual_seed(batch * 10 + views)
    embeddings = torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64)
    if multi_hot:
        labels = (torch.rand(batch, 4, generator=generator) < 0.4).double()
    else:
        labels = torch.randint(-1, 3, (batch,), generator=generator)
    _check_against_reference(embeddings, labels, **options)


@pytest.mark.parametrize(
    "labels",
    [
        torch.zeros(6, dtype=torch.long),
        torch.arange(6),
        torch.full((6,), -1),
        torch.zeros(6, 3, dtype=torch.float64),
        torch.ones(6, 3, dtype=torch.float64),
    ],
    ids=["one_cluster", "all_distinct", "no_cluster", "empty_rows", "all_clusters"],
)
@pytest.mark.parametrize("views", [1, 2])
def test_matches_reference_on_degenerate_batches(labels: torch.Tensor, views: int) -> None:
    embeddings = torch.randn(6, views, DIM, dtype=torch.float64)
    embeddings[3] = embeddings[0]
    _check_against_reference(embeddings, labels)


@st.composite
def cluster_batches(draw):
    batch = draw(st.integers(1, 8))
    views = draw(st.integers(1, 3))
    labels = torch.tensor(draw(st.lists(st.integers(-1, 4), min_size=batch, max_size=batch)))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64), labels


@PROPERTY_SETTINGS
@given(cluster_batches())
def test_instance_ids_give_simclr(batch) -> None:
    embeddings, _ = batch
    two_views = torch.cat([embeddings, embeddings.flip(0)], dim=1)
    instance_ids = torch.arange(embeddings.shape[0])
    _close(ClInfoNCELoss()(two_views, instance_ids), SupConLoss()(two_views, None))


@PROPERTY_SETTINGS
@given(cluster_batches(), st.randoms(use_true_random=False))
def test_order_and_cluster_names_do_not_matter(batch, rng) -> None:
    embeddings, labels = batch
    order = list(range(labels.shape[0]))
    rng.shuffle(order)
    renamed = torch.where(labels >= 0, labels * 13 + 5, -1)
    loss = ClInfoNCELoss()
    expected = loss(embeddings, labels)
    _close(loss(embeddings[order], labels[order]), expected)
    _close(loss(embeddings, renamed), expected)


def test_one_hot_clusters_equal_cluster_ids() -> None:
    embeddings, ids = torch.randn(7, 2, DIM, dtype=torch.float64), torch.tensor([0, 2, 1, 2, 0, 0, 1])
    one_hot = torch.nn.functional.one_hot(ids, 3).double()
    _close(ClInfoNCELoss()(embeddings, one_hot), ClInfoNCELoss()(embeddings, ids))
    assert ClInfoNCELoss.label_kind == "clusters" and "tsai2022" in ClInfoNCELoss.citation


# ------------------------------------------------------------------------------------------- cluster builders


def test_attribute_clusters_use_the_highest_entropy_attributes() -> None:
    attributes = torch.tensor(
        [
            [0, 0, 1, 1],
            [0, 1, 0, 1],
            [0, 0, 1, 0],
            [1, 1, 0, 1],
            [0, 0, 1, 0],
            [0, 1, 0, 1],
        ]
    )
    entropies = attribute_entropies(attributes)
    shares = [1 / 6, 3 / 6, 3 / 6, 4 / 6]
    expected = [-(p * math.log2(p) + (1 - p) * math.log2(1 - p)) for p in shares]
    _close(entropies, torch.tensor(expected, dtype=torch.float64))
    # columns 1 and 2 have the highest entropy (1 bit); ties keep column order
    top_one = attribute_clusters(attributes, 1)
    assert top_one.tolist() == attributes[:, 1].tolist()
    top_two = attribute_clusters(attributes, 2)
    joint = [tuple(row) for row in attributes[:, [1, 2]].tolist()]
    for i in range(6):
        for j in range(6):
            assert (top_two[i] == top_two[j]) == (joint[i] == joint[j])
    assert len(set(attribute_clusters(attributes, 4).tolist())) == len(set(map(tuple, attributes.tolist())))
    with pytest.raises(LossInputError, match="top_k"):
        attribute_clusters(attributes, 5)


@pytest.fixture(scope="module")
def goemotions(shipped_data):
    folder = shipped_data / "goemotions"
    taxonomy = LabelTaxonomy.from_file(folder / "taxonomy_edges.tsv")
    with gzip.open(folder / "dev_hier.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for _, line in zip(range(64), handle)]
    return taxonomy, records


def test_taxonomy_level_clusters_give_the_ekman_groups(goemotions) -> None:
    taxonomy, records = goemotions
    labels = taxonomy.encode([[f"emotion:{name}" for name in record["emotions"]] for record in records])
    ekman = taxonomy_level_clusters(taxonomy, labels, depth=1)
    names = [taxonomy.label(int(i)) for i in taxonomy_level_nodes(taxonomy, 1)]
    assert len(names) == 7 and all(name.startswith("ekman:") for name in names)
    for row, record in zip(ekman, records):
        assert {names[int(c)] for c in row.nonzero().flatten()} == {f"ekman:{e}" for e in record["ekman"]}
    leaf_labels = labels[:, taxonomy.leaf_ids]
    assert torch.equal(taxonomy_level_clusters(taxonomy, leaf_labels, depth=1), ekman)
    loss = ClInfoNCELoss()(torch.randn(len(records), 2, DIM), ekman)
    assert torch.isfinite(loss)
    with pytest.raises(LossInputError, match="depth"):
        taxonomy_level_clusters(taxonomy, labels, depth=taxonomy.num_levels)


def test_kmeans_clusters_find_separated_groups() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 6) * 5
    points = centres.repeat_interleave(10, dim=0) + 0.1 * torch.randn(30, 6, generator=generator)
    ids = kmeans_clusters(points, 3, seed=0)
    groups = torch.arange(3).repeat_interleave(10)
    for i in range(30):
        assert bool(((ids == ids[i]) == (groups == groups[i])).all())
    with pytest.raises(LossInputError, match="n_clusters"):
        kmeans_clusters(points, 31)
    with pytest.raises(LossInputError, match="NaN"):
        kmeans_clusters(torch.full((4, 2), float("nan")), 2)
