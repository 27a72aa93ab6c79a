"""``average_gradients``: a loss's own parameters (prototypes) get the process-mean gradient, as DDP gives
the parameters it wraps, so that every process applies the same update."""

from __future__ import annotations

import torch
from distributed_utils import run_distributed

from hiercon.losses import AbaloneLoss
from hiercon.losses.distributed import average_gradients

NUM_LABELS, DIM = 3, 4


def _prototype_gradients(rank: int, world_size: int) -> dict[str, torch.Tensor]:
    """Each process scores its own batch with the same loss; returns its gradients before and after averaging."""
    torch.manual_seed(0)
    loss = AbaloneLoss(NUM_LABELS, DIM, 0.2).double()
    generator = torch.Generator().manual_seed(10 + rank)
    embeddings = torch.randn(5, 2, DIM, generator=generator, dtype=torch.float64)
    labels = (torch.rand(5, NUM_LABELS, generator=generator) < 0.5).double()
    labels[:, 0] = 1.0
    loss(embeddings, labels).backward()
    local = {name: p.grad.clone() for name, p in loss.named_parameters()}
    extra = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    if rank == 1:
        extra.grad = torch.tensor([2.0, -4.0], dtype=torch.float64)
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    average_gradients([*loss.parameters(), extra, frozen])
    averaged = {name: p.grad.clone() for name, p in loss.named_parameters()}
    return {"local": local, "averaged": averaged, "extra": extra.grad.clone(), "frozen": frozen.grad}


def test_gradients_are_averaged_over_two_processes() -> None:
    results = run_distributed(_prototype_gradients, 2)
    names = list(results[0]["local"])
    assert names, "the loss has trainable prototypes"
    for name in names:
        local = [result["local"][name] for result in results]
        assert not torch.allclose(local[0], local[1]), "the processes' own gradients differ"
        expected = (local[0] + local[1]) / 2
        for result in results:
            torch.testing.assert_close(result["averaged"][name], expected)
    for result in results:
        torch.testing.assert_close(result["extra"], torch.tensor([1.0, -2.0], dtype=torch.float64))
        assert result["frozen"] is None


def test_single_process_leaves_gradients_alone() -> None:
    parameter = torch.nn.Parameter(torch.ones(3))
    parameter.grad = torch.tensor([1.0, 2.0, 3.0])
    average_gradients([parameter])
    torch.testing.assert_close(parameter.grad, torch.tensor([1.0, 2.0, 3.0]))
