"""Property tests (hypothesis) of the SupCon-family losses: invariances and special cases."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_losses import reg_weights_reference

from hiercon.losses import AbaloneLoss, JaccardSupConLoss, MulSupConLoss, PrototypeLoss, RegLoss, SupConLoss
from hiercon.losses.reg import reg_target_weights, reg_target_weights_with_prototypes

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None)
DIM = 6


@st.composite
def multi_label_batches(draw, min_batch: int = 1, max_batch: int = 8, max_labels: int = 5):
    """``(embeddings [B, V, d] float64, multi-hot labels [B, C])``."""
    batch = draw(st.integers(min_batch, max_batch))
    views = draw(st.integers(1, 2))
    num_labels = draw(st.integers(1, max_labels))
    cells = draw(st.lists(st.booleans(), min_size=batch * num_labels, max_size=batch * num_labels))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64)
    labels = torch.tensor(cells, dtype=torch.float64).reshape(batch, num_labels)
    return embeddings, labels


@st.composite
def class_id_batches(draw, min_views: int = 1):
    batch = draw(st.integers(1, 8))
    views = draw(st.integers(min_views, 3))
    labels = torch.tensor(draw(st.lists(st.integers(-1, 3), min_size=batch, max_size=batch)))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64), labels


def _multi_label_losses(num_labels: int) -> list[torch.nn.Module]:
    torch.manual_seed(1)
    losses = [
        SupConLoss(positives="all"),
        SupConLoss(positives="any", variant="in"),
        JaccardSupConLoss(),
        MulSupConLoss(),
        MulSupConLoss(with_weight=True),
        AbaloneLoss(num_labels, DIM),
        RegLoss(num_labels, DIM),
        RegLoss(num_labels, DIM, alpha=-1.0, gradient_regularization=False),
        PrototypeLoss(num_labels, DIM),
    ]
    return [loss.double() for loss in losses]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-11)


@PROPERTY_SETTINGS
@given(multi_label_batches(), st.randoms(use_true_random=False))
def test_multi_label_losses_ignore_batch_order(batch, rng) -> None:
    embeddings, labels = batch
    order = list(range(labels.shape[0]))
    rng.shuffle(order)
    for loss in _multi_label_losses(labels.shape[1]):
        _close(loss(embeddings[order], labels[order]), loss(embeddings, labels))


@PROPERTY_SETTINGS
@given(multi_label_batches(), st.randoms(use_true_random=False))
def test_multi_label_losses_ignore_label_names(batch, rng) -> None:
    """Renaming labels permutes the label columns (and, with them, the prototypes)."""
    embeddings, labels = batch
    columns = list(range(labels.shape[1]))
    rng.shuffle(columns)
    for loss in _multi_label_losses(labels.shape[1]):
        expected = loss(embeddings, labels)
        if hasattr(loss, "prototypes"):
            with torch.no_grad():
                loss.prototypes.copy_(loss.prototypes[columns])
        _close(loss(embeddings, labels[:, columns]), expected)


@PROPERTY_SETTINGS
@given(class_id_batches(), st.randoms(use_true_random=False))
def test_supcon_ignores_batch_order_and_class_names(batch, rng) -> None:
    embeddings, labels = batch
    order = list(range(labels.shape[0]))
    rng.shuffle(order)
    names = [10, 4, 7, 0]
    renamed = torch.tensor([names[int(y)] if y >= 0 else -5 for y in labels])
    for loss in (SupConLoss(), SupConLoss(variant="in", base_temperature=0.07)):
        expected = loss(embeddings, labels)
        _close(loss(embeddings[order], labels[order]), expected)
        _close(loss(embeddings, renamed), expected)


@PROPERTY_SETTINGS
@given(class_id_batches(min_views=2), st.sampled_from(["out", "in"]))
def test_supcon_with_unique_labels_is_simclr(batch, variant: str) -> None:
    embeddings, _ = batch
    loss = SupConLoss(variant=variant)
    unique = torch.arange(embeddings.shape[0])
    _close(loss(embeddings, unique), loss(embeddings, None))


@PROPERTY_SETTINGS
@given(class_id_batches())
def test_jaccard_and_mulsupcon_on_one_hot_equal_supcon(batch) -> None:
    embeddings, labels = batch
    one_hot = torch.zeros(labels.shape[0], 4, dtype=torch.float64)
    labelled = labels >= 0
    one_hot[labelled, labels[labelled]] = 1.0
    supcon = SupConLoss()(embeddings, labels)
    _close(JaccardSupConLoss()(embeddings, one_hot), supcon)
    _close(MulSupConLoss()(embeddings, one_hot), supcon)
    _close(SupConLoss(positives="any")(embeddings, one_hot), supcon)


@PROPERTY_SETTINGS
@given(multi_label_batches(max_batch=10, max_labels=6), st.sampled_from([1.0, 0.0, 0.5, 2.0, -1.0]))
def test_reg_target_weights_sum_to_one_per_anchor(batch, alpha: float) -> None:
    """Anchors whose every label has a key to carry it distribute mass one; the others none.

    Sample anchors always do (through their labels' prototypes). Prototype ``c`` does when a
    sample holds ``c`` (for ``alpha < 0``: holds exactly ``{c}``, a subset of the prototype's set).
    """
    _, labels = batch
    num_labels = labels.shape[1]
    items = torch.cat([labels, torch.eye(num_labels, dtype=labels.dtype)])
    not_self = ~torch.eye(items.shape[0], dtype=torch.bool)
    weights = reg_target_weights(items, items, not_self, alpha)
    assert (weights >= 0).all() and (weights[~not_self] == 0).all()
    if alpha >= 0:
        carried = labels.sum(0) > 0
    else:
        carried = ((labels > 0) & (labels.sum(1, keepdim=True) == 1)).any(0)
    expected = torch.cat([labels.sum(1) > 0, carried]).to(weights.dtype)
    torch.testing.assert_close(weights.sum(1), expected)


@pytest.mark.parametrize("alpha", [1.0, 0.5, -1.0])
def test_reg_target_weights_equal_loop_reference(alpha: float) -> None:
    labels = (torch.rand(7, 4) < 0.5).double()
    items = torch.cat([labels, torch.eye(4, dtype=torch.float64)])
    not_self = ~torch.eye(11, dtype=torch.bool)
    sets = [{c for c in range(4) if row[c] > 0} for row in items]
    expected = torch.tensor(reg_weights_reference(sets, alpha), dtype=torch.float64)
    torch.testing.assert_close(reg_target_weights(items, items, not_self, alpha), expected)


@PROPERTY_SETTINGS
@given(multi_label_batches(max_batch=10, max_labels=6), st.sampled_from([1.0, 0.0, 0.5, -1.0]))
def test_blockwise_reg_weights_equal_the_item_matrix_form(batch, alpha: float) -> None:
    _, labels = batch
    num_samples, num_labels = labels.shape
    items = torch.cat([labels, torch.eye(num_labels, dtype=labels.dtype)])
    not_self = ~torch.eye(items.shape[0], dtype=torch.bool)
    sample_valid = ~torch.eye(num_samples, dtype=torch.bool)
    blockwise = reg_target_weights_with_prototypes(labels, labels, sample_valid, alpha)
    torch.testing.assert_close(blockwise, reg_target_weights(items, items, not_self, alpha))
