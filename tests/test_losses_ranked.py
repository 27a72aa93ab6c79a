"""Ranked contrastive loss (Balasubramanian et al. 2022): loop reference, rankings, special cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_hierarchical import class_rankings
from reference_hierarchical import ranked as ranked_reference

from hiercon import LabelTaxonomy
from hiercon.errors import LossInputError
from hiercon.losses import RankedContrastiveLoss, SupConLoss
from hiercon.losses.hierarchy_masks import rank_rows

DIM = 5
CLASSES = 5
PROPERTY_SETTINGS = settings(max_examples=12, deadline=None)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


def _similarity(seed: int = 0) -> torch.Tensor:
    """A symmetric class similarity with quarter steps (so equal values, hence merged ranks, occur)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(CLASSES, CLASSES, generator=generator, dtype=torch.float64)
    values = ((values + values.T) * 2).round() / 4
    return values.fill_diagonal_(1.0)


def _label_sets(labels: torch.Tensor) -> list[set[int]]:
    if labels.dim() == 1:
        return [{int(c)} if c >= 0 else set() for c in labels]
    return [{int(c) for c in row.nonzero().flatten()} for row in labels]


def _check_against_reference(embeddings: torch.Tensor, labels: torch.Tensor, options: dict) -> None:
    similarity = _similarity(1)
    loss_fn = RankedContrastiveLoss(similarity=similarity, **options)
    inputs = embeddings.detach().clone().requires_grad_(True)
    value = loss_fn(inputs, labels)
    (grad,) = torch.autograd.grad(value, inputs)
    rank, rank_similarity, deepest = class_rankings(
        similarity.tolist(),
        _label_sets(labels),
        options.get("similarity_threshold", 0.0),
        options.get("max_ranks"),
        options.get("merge_equal_similarity", True),
    )
    reference_inputs = embeddings.detach().clone().requires_grad_(True)
    expected = ranked_reference(
        reference_inputs,
        rank,
        rank_similarity,
        deepest,
        tau_min=options.get("tau_min", 0.1),
        tau_max=options.get("tau_max", 0.6),
        reduction=options.get("reduction", "sum_in_log"),
    )
    if options.get("rank_reduction") == "mean":
        expected = expected / loss_fn.num_ranks
    (expected_grad,) = torch.autograd.grad(expected, reference_inputs)
    _close(value.detach(), expected.detach())
    _close(grad, expected_grad)


OPTION_SETS = [
    {},
    {"reduction": "per_positive"},
    {"rank_reduction": "mean", "merge_equal_similarity": False},
    {"max_ranks": 2, "similarity_threshold": 0.3},
    {"reduction": "per_positive", "rank_reduction": "mean", "max_ranks": 3},
    {"merge_equal_similarity": False, "similarity_threshold": 0.5, "tau_min": 0.05, "tau_max": 1.0},
]
SHAPES = [(6, 2), (5, 1), (4, 3), (1, 2), (7, 2)]
CASES = [
    (SHAPES[i % len(SHAPES)], options, multi) for i, options in enumerate(OPTION_SETS) for multi in (0, 1)
]


@pytest.mark.parametrize(("shape", "options", "multi_hot"), CASES)
def test_matches_reference(shape: tuple[int, int], options: dict, multi_hot: int) -> None:
    batch, views = shape
    generator = torch.Generator().manual_seed(batch * 10 + views + 100 * multi_hot)
    embeddings = torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64)
    if multi_hot:
        labels = (torch.rand(batch, CLASSES, generator=generator) < 0.35).double()
    else:
        labels = torch.randint(-1, CLASSES, (batch,), generator=generator)
    _check_against_reference(embeddings, labels, options)


@pytest.mark.parametrize(
    "labels",
    [
        torch.zeros(6, dtype=torch.long),  # one class
        torch.tensor([0, 1, 2, 3, 4, -1]),  # every class distinct, one unlabelled
        torch.zeros(6, CLASSES, dtype=torch.float64),  # empty label rows
        torch.ones(6, CLASSES, dtype=torch.float64),  # every label on every item
    ],
    ids=["one_class", "all_distinct", "empty_rows", "all_labels"],
)
@pytest.mark.parametrize("options", [OPTION_SETS[0], OPTION_SETS[4]])
def test_matches_reference_on_degenerate_batches(labels: torch.Tensor, options: dict) -> None:
    embeddings = torch.randn(6, 2, DIM, dtype=torch.float64)
    embeddings[2] = embeddings[1]
    _check_against_reference(embeddings, labels, options)


def test_one_rank_is_supcon_sum_in_log() -> None:
    """r = 1: :math:`-\\log \\sum_{p} p_{ap}` = SupCon's :math:`L_{in}` minus :math:`\\log |P(a)|`."""
    torch.manual_seed(2)
    embeddings = torch.randn(8, 2, DIM, dtype=torch.float64)
    labels = torch.randint(0, 3, (8,))
    loss = RankedContrastiveLoss(similarity=_similarity(), max_ranks=1, tau_min=0.1, tau_max=0.6)(
        embeddings, labels
    )
    positives = torch.bincount(labels, minlength=3)[labels] * 2 - 1
    log_count = torch.log(positives.double()).repeat_interleave(2).mean()
    _close(loss, SupConLoss(temperature=0.1, variant="in")(embeddings, labels) - log_count)


def test_taxonomy_gives_the_leaf_similarity() -> None:
    taxonomy = LabelTaxonomy.from_edges([("root", "a"), ("root", "b"), ("a", "x"), ("a", "y"), ("b", "z")])
    leaves = taxonomy.leaf_ids
    expected = RankedContrastiveLoss(similarity=taxonomy.similarity_matrix[leaves][:, leaves])
    from_taxonomy = RankedContrastiveLoss(taxonomy=taxonomy)
    assert torch.equal(from_taxonomy.similarity, expected.similarity)
    embeddings, labels = torch.randn(6, 2, DIM), torch.tensor([0, 1, 2, 0, 1, 2])
    _close(from_taxonomy(embeddings, labels), expected(embeddings, labels))
    assert from_taxonomy.num_ranks == 2  # own leaf, then the sibling leaf


def test_rank_rows() -> None:
    rows = torch.tensor([[1.0, 0.5, 0.75, 0.5, 0.0], [0.25, 1.0, 0.25, 0.0, 0.875]])
    ranks, values = rank_rows(rows)
    assert ranks.tolist() == [[1, 3, 2, 3, 0], [3, 1, 3, 0, 2]]
    assert values.tolist() == [[1.0, 0.75, 0.5], [1.0, 0.875, 0.25]]
    ranks, _ = rank_rows(rows, merge_equal=False)
    assert ranks.tolist() == [[1, 3, 2, 4, 0], [3, 1, 4, 0, 2]]
    ranks, values = rank_rows(rows, threshold=0.5, max_ranks=2)
    assert ranks.tolist() == [[1, 0, 2, 0, 0], [0, 1, 0, 0, 2]]
    assert values.tolist() == [[1.0, 0.75], [1.0, 0.875]]


def test_rank_temperatures_rise_with_rank() -> None:
    loss = RankedContrastiveLoss(similarity=_similarity(), tau_min=0.1, tau_max=0.6)
    temperatures = loss.rank_temperature(torch.tensor([1.0, 0.75, 0.0]))
    _close(temperatures, torch.tensor([0.1, 0.225, 0.6]))


@st.composite
def ranked_batches(draw):
    batch = draw(st.integers(1, 7))
    views = draw(st.integers(1, 2))
    labels = torch.tensor(draw(st.lists(st.integers(-1, CLASSES - 1), min_size=batch, max_size=batch)))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64), labels


@PROPERTY_SETTINGS
@given(ranked_batches(), st.randoms(use_true_random=False), st.sampled_from(OPTION_SETS))
def test_batch_order_does_not_matter(batch, rng, options) -> None:
    embeddings, labels = batch
    order = list(range(labels.shape[0]))
    rng.shuffle(order)
    loss = RankedContrastiveLoss(similarity=_similarity(), **options)
    _close(loss(embeddings[order], labels[order]), loss(embeddings, labels))


@PROPERTY_SETTINGS
@given(ranked_batches(), st.permutations(list(range(CLASSES))))
def test_renaming_classes_does_not_matter(batch, permutation) -> None:
    """Class ``c`` renamed ``perm[c]`` with the similarity matrix permuted alike (merged ranks)."""
    embeddings, labels = batch
    perm = torch.tensor(permutation)
    similarity = _similarity()
    renamed_similarity = torch.empty_like(similarity)
    renamed_similarity[perm[:, None], perm[None, :]] = similarity
    renamed = torch.where(labels >= 0, perm[labels.clamp_min(0)], -1)
    _close(
        RankedContrastiveLoss(similarity=renamed_similarity)(embeddings, renamed),
        RankedContrastiveLoss(similarity=similarity)(embeddings, labels),
    )


def test_queue_adds_labelled_keys() -> None:
    torch.manual_seed(3)
    loss = RankedContrastiveLoss(similarity=_similarity(), queue_size=8)
    first = torch.nn.functional.normalize(torch.randn(4, 2, DIM), dim=-1)
    first_labels = torch.tensor([0, 1, 2, 0])
    loss.eval()
    loss(first, first_labels)
    assert len(loss.queue) == 0  # only training steps enqueue
    loss.train()
    loss(first, first_labels)
    keys, labels = loss.queue.contents()
    assert torch.allclose(keys, first.reshape(8, DIM), atol=1e-6)
    assert labels.argmax(dim=1).tolist() == first_labels.repeat_interleave(2).tolist()

    # with the queue, the batch's second pass sees its own first-pass keys as extra keys: a key
    # identical to the anchor with the anchor's class makes the rank-1 positive mass larger
    embeddings = first.clone().requires_grad_(True)
    loss.eval()
    with_queue = loss(embeddings, first_labels)
    without_queue = RankedContrastiveLoss(similarity=_similarity())(first, first_labels)
    assert with_queue < without_queue
    with_queue.backward()
    assert torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"similarity": torch.ones(2, 3)}, "square"),
        ({"similarity": torch.tensor([[1.0, 2.0], [0.0, 1.0]])}, r"\[0, 1\]"),
        ({"similarity": torch.tensor([[0.5, 0.0], [0.0, 1.0]])}, "diagonal"),
        ({"similarity": torch.eye(2), "tau_min": 0.5, "tau_max": 0.2}, "tau_max"),
        ({"similarity": torch.eye(2), "max_ranks": 0}, "max_ranks"),
        ({"similarity": torch.eye(2), "similarity_threshold": 1.0}, "similarity_threshold"),
        ({"similarity": torch.eye(2), "reduction": "sum_out_log"}, "reduction"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(LossInputError, match=message):
        RankedContrastiveLoss(**kwargs)


def test_bad_labels_are_refused() -> None:
    loss = RankedContrastiveLoss(similarity=torch.eye(3))
    with pytest.raises(LossInputError, match="outside"):
        loss(torch.randn(2, 2, DIM), torch.tensor([0, 3]))
    with pytest.raises(LossInputError, match="columns"):
        loss(torch.randn(2, 2, DIM), torch.ones(2, 4))
    with pytest.raises(LossInputError, match="integer"):
        loss(torch.randn(2, 2, DIM), torch.tensor([0.0, 1.0]))
    assert math.isfinite(float(loss(torch.randn(2, 2, DIM), torch.tensor([0, 2]))))
