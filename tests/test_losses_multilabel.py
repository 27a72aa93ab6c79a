"""Multi-label losses (Jaccard SupCon, MulSupCon, ABALONE, REG, prototypes) against loop references."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from reference_losses import (
    abalone_reference,
    jaccard_supcon_reference,
    mulsupcon_reference,
    prototype_reference,
    reg_reference,
)

from hiercon.errors import LossInputError
from hiercon.losses import AbaloneLoss, JaccardSupConLoss, MulSupConLoss, PrototypeLoss, RegLoss
from hiercon.losses.abalone import abalone_weights

NUM_LABELS = 4
DIM = 5


def _random(batch: int) -> torch.Tensor:
    return (torch.rand(batch, NUM_LABELS) < 0.4).float()


def _with_empty_rows(batch: int) -> torch.Tensor:
    labels = _random(batch)
    labels[::3] = 0
    return labels


LABEL_CASES: dict[str, Callable[[int], torch.Tensor]] = {
    "random": _random,
    "one_label": lambda b: torch.zeros(b, NUM_LABELS).index_fill_(1, torch.tensor([2]), 1.0),
    "all_distinct": lambda b: (
        torch.eye(NUM_LABELS)[torch.arange(b) % NUM_LABELS] * (torch.arange(b) < 4)[:, None]
    ),
    "empty_rows": _with_empty_rows,
    "all_empty": lambda b: torch.zeros(b, NUM_LABELS),
    "all_labels": lambda b: torch.ones(b, NUM_LABELS),
}

BATCH_SHAPES = [(6, 1), (5, 2), (1, 1), (1, 2), (4, 3)]


def _grads(value: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(value, inputs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]


def _compare(loss: torch.nn.Module, reference: Callable, emb: torch.Tensor, labels: torch.Tensor) -> None:
    """Value and gradients (embeddings, and prototypes when the loss owns them) equal the reference."""
    loss = loss.double()
    emb = emb.detach().clone().requires_grad_(True)
    params = [emb] + list(loss.parameters())
    value = loss(emb, labels)
    grads = _grads(value, params)

    ref_emb = emb.detach().clone().requires_grad_(True)
    ref_params = [ref_emb] + [p.detach().clone().requires_grad_(True) for p in loss.parameters()]
    ref_value = reference(*ref_params[:1], labels, *ref_params[1:])
    ref_grads = _grads(ref_value, ref_params)

    assert torch.isfinite(value) and value.dtype == torch.float64
    torch.testing.assert_close(value.detach(), ref_value.detach(), rtol=1e-10, atol=1e-12)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


def _loss_and_reference(name: str) -> tuple[torch.nn.Module, Callable]:
    tau = 0.2
    builders = {
        "jaccard": (JaccardSupConLoss(tau), lambda e, y: jaccard_supcon_reference(e, y, tau)),
        "mulsupcon": (MulSupConLoss(tau), lambda e, y: mulsupcon_reference(e, y, tau)),
        "mulsupcon_weighted": (
            MulSupConLoss(tau, with_weight=True),
            lambda e, y: mulsupcon_reference(e, y, tau, with_weight=True),
        ),
        "abalone": (
            AbaloneLoss(NUM_LABELS, DIM, tau, alpha=0.7, beta=0.1),
            lambda e, y, p: abalone_reference(e, y, p, tau, alpha=0.7, beta=0.1),
        ),
        "abalone_no_sample_denominator": (
            AbaloneLoss(NUM_LABELS, DIM, tau, beta=0.0),
            lambda e, y, p: abalone_reference(e, y, p, tau, beta=0.0),
        ),
        "reg": (
            RegLoss(NUM_LABELS, DIM, tau, alpha=1.0),
            lambda e, y, p: reg_reference(e, y, p, tau, alpha=1.0),
        ),
        "reg_alpha_half": (
            RegLoss(NUM_LABELS, DIM, tau, alpha=0.5),
            lambda e, y, p: reg_reference(e, y, p, tau, alpha=0.5),
        ),
        "reg_subset": (
            RegLoss(NUM_LABELS, DIM, tau, alpha=-1.0),
            lambda e, y, p: reg_reference(e, y, p, tau, alpha=-1.0),
        ),
        "mscwrg": (
            RegLoss(NUM_LABELS, DIM, tau, gradient_regularization=False),
            lambda e, y, p: reg_reference(e, y, p, tau, gradient_regularization=False),
        ),
        "prototype": (PrototypeLoss(NUM_LABELS, DIM, tau), lambda e, y, p: prototype_reference(e, y, p, tau)),
    }
    return builders[name]


LOSS_NAMES = [
    "jaccard",
    "mulsupcon",
    "mulsupcon_weighted",
    "abalone",
    "abalone_no_sample_denominator",
    "reg",
    "reg_alpha_half",
    "reg_subset",
    "mscwrg",
    "prototype",
]


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_matches_reference_on_label_cases(name: str, case: str) -> None:
    for batch, views in BATCH_SHAPES:
        loss, reference = _loss_and_reference(name)
        labels = LABEL_CASES[case](batch)
        _compare(loss, reference, torch.randn(batch, views, DIM, dtype=torch.float64), labels)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_matches_reference_with_duplicated_embeddings(name: str) -> None:
    loss, reference = _loss_and_reference(name)
    emb = torch.randn(1, 1, DIM, dtype=torch.float64).expand(6, 2, DIM).clone()
    _compare(loss, reference, emb, _random(6))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_two_dimensional_embeddings_equal_one_view(name: str) -> None:
    loss, _ = _loss_and_reference(name)
    emb, labels = torch.randn(6, DIM), _random(6)
    torch.testing.assert_close(loss(emb, labels), loss(emb[:, None], labels))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_unlabelled_batch_is_zero_and_backpropagates(name: str) -> None:
    loss, _ = _loss_and_reference(name)
    emb = torch.randn(5, 2, DIM, requires_grad=True)
    value = loss(emb, torch.zeros(5, NUM_LABELS))
    value.backward()
    assert value.item() == 0.0
    assert emb.grad is not None and torch.isfinite(emb.grad).all()


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_bool_and_integer_multi_hot_are_accepted(name: str) -> None:
    loss, _ = _loss_and_reference(name)
    emb, labels = torch.randn(6, DIM), _random(6)
    expected = loss(emb, labels)
    torch.testing.assert_close(loss(emb, labels.bool()), expected)
    torch.testing.assert_close(loss(emb, labels.long()), expected)


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0, 1, 0, 1]), "multi-hot of shape"),
        (torch.full((4, NUM_LABELS), 0.5), "0 or 1"),
        (torch.zeros(3, NUM_LABELS), "labels has 3 rows"),
        ([[0, 1, 0, 1]] * 4, "torch.Tensor"),
    ],
)
def test_bad_labels_name_the_argument(name: str, labels, match: str) -> None:
    loss, _ = _loss_and_reference(name)
    with pytest.raises(LossInputError, match=match):
        loss(torch.randn(4, DIM), labels)


@pytest.mark.parametrize("cls", [AbaloneLoss, RegLoss, PrototypeLoss])
def test_prototype_losses_check_sizes(cls) -> None:
    loss = cls(NUM_LABELS, DIM)
    with pytest.raises(LossInputError, match="columns but the loss was built for 4 labels"):
        loss(torch.randn(4, DIM), torch.zeros(4, NUM_LABELS + 1))
    with pytest.raises(LossInputError, match="embedding_dim=5"):
        loss(torch.randn(4, DIM + 1), torch.zeros(4, NUM_LABELS))
    with pytest.raises(LossInputError, match="num_labels"):
        cls(0, DIM)
    with pytest.raises(LossInputError, match="temperature"):
        cls(NUM_LABELS, DIM, temperature=0.0)


def test_abalone_and_reg_refuse_bad_hyperparameters() -> None:
    with pytest.raises(LossInputError, match="beta"):
        AbaloneLoss(NUM_LABELS, DIM, beta=-0.1)
    with pytest.raises(LossInputError, match="alpha"):
        AbaloneLoss(NUM_LABELS, DIM, alpha=float("nan"))
    with pytest.raises(LossInputError, match="alpha"):
        RegLoss(NUM_LABELS, DIM, alpha=float("inf"))


def test_abalone_spreads_mass_one_per_label() -> None:
    labels = _with_empty_rows(9)
    not_self = ~torch.eye(9, dtype=torch.bool)
    sample_weights, prototype_weights = abalone_weights(labels, labels, not_self, alpha=0.8)
    torch.testing.assert_close(sample_weights.sum(1) + prototype_weights.sum(1), labels.sum(1))
    assert (sample_weights[~not_self] == 0).all()


def test_prototypes_are_learnable_parameters_with_xavier_scale() -> None:
    loss = AbaloneLoss(100, 64)
    assert [name for name, _ in loss.named_parameters()] == ["prototypes"]
    bound = (6.0 / (100 + 64)) ** 0.5
    assert loss.prototypes.abs().max() <= bound and loss.prototypes.std() > bound / 3
    assert loss.config()["num_labels"] == 100 and loss.config()["beta"] == 0.1


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_citation(name: str) -> None:
    loss, _ = _loss_and_reference(name)
    assert loss.citation.startswith("@") and "year" in loss.citation
