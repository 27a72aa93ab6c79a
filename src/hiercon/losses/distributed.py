"""Gathering tensors across processes so that negatives span the global batch.

Embeddings are gathered with gradient (each process receives the gradient that every
process's loss sends to its own rows); labels and counts are gathered without gradient.
Processes may hold batches of different sizes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def _gather_sizes(n: int, device: torch.device) -> list[int]:
    size = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _all_gather_padded(tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate every process's ``tensor`` along dim 0 (sizes may differ between processes)."""
    longest = max(sizes)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, sizes)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        sizes = _gather_sizes(tensor.shape[0], tensor.device)
        ctx.sizes = sizes
        ctx.offset = sum(sizes[: dist.get_rank()])
        return _all_gather_padded(tensor, sizes)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        own = ctx.sizes[dist.get_rank()]
        return grad[ctx.offset : ctx.offset + own]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0, differentiable. Identity outside a process group."""
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 without gradient (labels, ids). Identity outside a process group."""
    if not is_distributed():
        return tensor
    sizes = _gather_sizes(tensor.shape[0], tensor.device)
    return _all_gather_padded(tensor.detach(), sizes)


def local_offset(n_local: int, device: torch.device) -> int:
    """Index of this process's first row in the gathered batch."""
    if not is_distributed():
        return 0
    return sum(_gather_sizes(n_local, device)[: dist.get_rank()])


def sum_across_processes(value: torch.Tensor) -> torch.Tensor:
    """Sum a (detached) tensor over processes; identity outside a process group."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over processes (what DDP does for the modules it wraps).

    For trainable tensors outside the DDP-wrapped model, such as a loss's label prototypes. A parameter
    without a gradient on this process counts as a zero gradient, so that every process takes part in the
    one all-reduce and ends with the same gradient. No-op outside a process group of more than one process.
    """
    if not is_distributed():
        return
    trainable = [p for p in parameters if p.requires_grad]
    if not trainable:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in trainable]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    for parameter, mean in zip(trainable, flat.split([g.numel() for g in grads])):
        parameter.grad = mean.view_as(parameter).to(parameter.dtype).clone()
