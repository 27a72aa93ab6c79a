"""No NaN or Inf, in values or gradients, over 10,000 random small batches of the SupCon family.

Batches mix sizes 1-8, one to three views, empty label rows, duplicated and tiny/huge embeddings,
temperatures down to 0.01 and bf16 autocast.
"""

from __future__ import annotations

import pytest
import torch

from hiercon.losses import AbaloneLoss, JaccardSupConLoss, MulSupConLoss, PrototypeLoss, RegLoss, SupConLoss

NUM_LABELS = 5
DIM = 8
TEMPERATURES = (0.01, 0.1, 1.0)
BATCHES_PER_LOSS = 910  # x 11 losses: just over 10,000 batches in total

LOSS_BUILDERS = {
    "supcon_class_ids": lambda t: SupConLoss(t),
    "supcon_in_base_temperature": lambda t: SupConLoss(t, base_temperature=0.07, variant="in"),
    "supcon_all": lambda t: SupConLoss(t, positives="all"),
    "simclr": lambda t: SupConLoss(t),
    "jaccard": lambda t: JaccardSupConLoss(t),
    "mulsupcon": lambda t: MulSupConLoss(t),
    "mulsupcon_weighted": lambda t: MulSupConLoss(t, with_weight=True),
    "abalone": lambda t: AbaloneLoss(NUM_LABELS, DIM, t),
    "reg": lambda t: RegLoss(NUM_LABELS, DIM, t),
    "reg_subset_no_gradient_term": lambda t: RegLoss(
        NUM_LABELS, DIM, t, alpha=-1.0, gradient_regularization=False
    ),
    "prototype": lambda t: PrototypeLoss(NUM_LABELS, DIM, t),
}


def _random_batch(name: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    batch, views = 1 + draw(8), 1 + draw(3)
    if name == "simclr":
        views = max(views, 2)
    embeddings = torch.randn(batch, views, DIM, generator=generator)
    style = draw(4)
    if style == 1:
        embeddings[:] = embeddings[0, 0]
    elif style == 2:
        embeddings = embeddings * 10.0 ** (draw(13) - 6)
    elif style == 3:
        embeddings[: batch // 2] = embeddings[batch // 2 : 2 * (batch // 2)]
    if name == "simclr":
        return embeddings, None
    if name.startswith("supcon") and name != "supcon_all":
        return embeddings, torch.randint(-1, 3, (batch,), generator=generator)
    density = (0.0, 0.2, 0.5, 1.0)[draw(4)]
    return embeddings, (torch.rand(batch, NUM_LABELS, generator=generator) < density).float()


@pytest.fixture
def one_thread():
    """Tiny batches run faster on one thread than split across several."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(LOSS_BUILDERS))
def test_finite_over_random_batches(name: str) -> None:
    generator = torch.Generator().manual_seed(sum(map(ord, name)))
    losses = [LOSS_BUILDERS[name](t) for t in TEMPERATURES]
    for step in range(BATCHES_PER_LOSS):
        embeddings, labels = _random_batch(name, generator)
        loss = losses[step % len(losses)]
        use_bf16 = step % 4 == 0
        embeddings = (embeddings.bfloat16() if use_bf16 else embeddings).requires_grad_(True)
        loss.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            value = loss(embeddings, labels)
        value.backward()
        context = f"{name} step {step}: shape {tuple(embeddings.shape)}, bf16={use_bf16}"
        assert value.dtype == torch.float32, context
        assert torch.isfinite(value), context
        assert torch.isfinite(embeddings.grad).all(), context
        for parameter in loss.parameters():
            assert parameter.grad is None or torch.isfinite(parameter.grad).all(), context
