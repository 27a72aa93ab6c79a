"""SupConLoss against the float64 loop reference, on random and degenerate batches."""

from __future__ import annotations

import pytest
import torch
from reference_losses import supcon_reference

from hiercon.errors import LossInputError
from hiercon.losses import SupConLoss


def _embeddings(batch: int, views: int, dim: int = 6, duplicate: bool = False) -> torch.Tensor:
    emb = torch.randn(batch, views, dim, dtype=torch.float64)
    if duplicate:
        emb[:] = emb[0, 0]
    return emb.requires_grad_(True)


def _value_and_grad(fn, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    emb = emb.detach().clone().requires_grad_(True)
    value = fn(emb)
    (grad,) = torch.autograd.grad(value, emb, allow_unused=True)
    return value.detach(), torch.zeros_like(emb) if grad is None else grad


def _assert_matches_reference(loss: SupConLoss, emb: torch.Tensor, labels, **reference_options) -> None:
    value, grad = _value_and_grad(lambda e: loss(e, labels), emb)
    ref_value, ref_grad = _value_and_grad(lambda e: supcon_reference(e, labels, **reference_options), emb)
    assert value.dtype == torch.float64
    torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


CLASS_ID_CASES = {
    "random": lambda b: torch.randint(0, 3, (b,)),
    "one_class": lambda b: torch.zeros(b, dtype=torch.long),
    "all_distinct": lambda b: torch.arange(b),
    "some_unlabelled": lambda b: torch.tensor([0, -1, 1, 0, -1, 1, 2, 2][:b]),
}


@pytest.mark.parametrize("case", sorted(CLASS_ID_CASES))
@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("variant", ["out", "in"])
def test_class_ids_match_reference(case: str, views: int, variant: str) -> None:
    labels = CLASS_ID_CASES[case](7)
    loss = SupConLoss(temperature=0.2, variant=variant)
    _assert_matches_reference(loss, _embeddings(7, views), labels, temperature=0.2, variant=variant)


@pytest.mark.parametrize("positives", ["all", "any"])
@pytest.mark.parametrize("views", [1, 2])
def test_multi_hot_matches_reference(positives: str, views: int) -> None:
    labels = (torch.rand(9, 4) < 0.4).float()
    labels[0] = 0
    labels[1] = labels[2]
    loss = SupConLoss(temperature=0.1, positives=positives)
    _assert_matches_reference(loss, _embeddings(9, views), labels, temperature=0.1, positives=positives)


def test_simclr_matches_reference() -> None:
    _assert_matches_reference(SupConLoss(temperature=0.5), _embeddings(6, 2), None, temperature=0.5)


def test_base_temperature_scales_loss_and_gradient() -> None:
    labels = torch.randint(0, 3, (8,))
    emb = _embeddings(8, 2)
    scaled = SupConLoss(temperature=0.1, base_temperature=0.07)
    _assert_matches_reference(scaled, emb, labels, temperature=0.1, base_temperature=0.07)
    plain = SupConLoss(temperature=0.1)(emb, labels)
    torch.testing.assert_close(scaled(emb, labels), plain * (0.1 / 0.07))


@pytest.mark.parametrize("views", [1, 2])
def test_duplicated_embeddings_match_reference(views: int) -> None:
    labels = torch.tensor([0, 1, 0, 1, 2])
    _assert_matches_reference(SupConLoss(), _embeddings(5, views, duplicate=True), labels)


def test_batch_of_one_single_view_is_zero_and_backpropagates() -> None:
    emb = _embeddings(1, 1)
    value = SupConLoss()(emb, torch.tensor([3]))
    value.backward()
    assert value.item() == 0.0
    assert emb.grad is not None and torch.equal(emb.grad, torch.zeros_like(emb))


def test_batch_of_one_two_views_matches_reference() -> None:
    _assert_matches_reference(SupConLoss(), _embeddings(1, 2), torch.tensor([3]))


def test_no_positive_pair_gives_zero_with_gradient_path() -> None:
    emb = _embeddings(4, 1)
    value = SupConLoss()(emb, torch.arange(4))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(emb.grad).all()


def test_label_names_do_not_matter_for_class_ids() -> None:
    emb = _embeddings(8, 2)
    labels = torch.tensor([0, 1, 1, 2, 0, 2, 1, 0])
    renamed = torch.tensor([7, 40, 40, 3, 7, 3, 40, 7])
    torch.testing.assert_close(SupConLoss()(emb, labels), SupConLoss()(emb, renamed))


def test_bf16_autocast_keeps_float32_logits() -> None:
    emb = torch.randn(8, 2, 16)
    labels = torch.randint(0, 3, (8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = SupConLoss()(emb.bfloat16(), labels)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, SupConLoss()(emb.bfloat16().float(), labels), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"base_temperature": 0.0}, "base_temperature"),
        ({"variant": "sideways"}, "variant"),
        ({"positives": "some"}, "positives"),
    ],
)
def test_bad_options_are_refused(options: dict, match: str) -> None:
    with pytest.raises(LossInputError, match=match):
        SupConLoss(**options)


@pytest.mark.parametrize(
    ("embeddings", "labels", "match"),
    [
        (torch.randn(4, 8), torch.tensor([0, 1, 0]), "labels has 3 rows"),
        (torch.randn(4, 8), torch.tensor([[0.0, 0.5]] * 4), "0 or 1"),
        (torch.randn(4, 8), torch.tensor([0.0, 1.0, 0.0, 1.0]), "integer class ids"),
        (torch.randn(4, 8), torch.zeros(4, 2, 2), "class ids of shape"),
        (torch.randint(0, 3, (4, 8)), torch.tensor([0, 1, 0, 1]), "floating-point"),
        (torch.randn(4, 2, 3, 8), torch.tensor([0, 1, 0, 1]), "embeddings must have shape"),
        (torch.randn(4, 8), [0, 1, 0, 1], "torch.Tensor"),
        (torch.randn(4, 8), None, "at least two views"),
    ],
)
def test_bad_inputs_name_the_argument(embeddings, labels, match: str) -> None:
    with pytest.raises(LossInputError, match=match):
        SupConLoss()(embeddings, labels)


def test_citation_and_config() -> None:
    loss = SupConLoss(temperature=0.07, variant="in")
    assert "Khosla" in loss.citation and loss.citation.startswith("@")
    assert loss.config()["temperature"] == 0.07 and loss.config()["variant"] == "in"
