r"""MoCo-style components any loss can use: a momentum (EMA) encoder and a labelled key queue.

- :class:`MomentumEncoder` keeps an exponential moving average copy of a module,
  :math:`\theta_k \leftarrow m \theta_k + (1 - m) \theta_q` (He et al., CVPR 2020), and encodes
  keys without gradient.
- :class:`MomentumQueue` is a first-in first-out memory of past keys (with their labels):
  losses use its keys as extra negatives or labelled positives. Under ``torch.distributed`` it
  enqueues the keys of every process, so all processes hold the same queue.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from hiercon.errors import LossInputError
from hiercon.losses import distributed


class MomentumEncoder(nn.Module):
    """An EMA copy of ``module``; call :meth:`update` after each optimiser step.

    The online module is referenced, not registered, so it is neither saved twice nor trained
    through this wrapper. The copy never requires gradient and encodes under ``no_grad``.
    """

    def __init__(self, module: nn.Module, momentum: float = 0.999) -> None:
        super().__init__()
        _check_momentum(momentum)
        self.momentum = float(momentum)
        self.encoder = copy.deepcopy(module)
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.__dict__["_online"] = module

    @torch.no_grad()
    def update(self, momentum: float | None = None) -> None:
        """Move the copy towards the online module: ``key = m * key + (1 - m) * online``."""
        m = self.momentum if momentum is None else momentum
        _check_momentum(m)
        online = dict(self._online.named_parameters())
        for name, parameter in self.encoder.named_parameters():
            parameter.mul_(m).add_(online[name].detach().to(parameter.dtype), alpha=1.0 - m)
        online_buffers = dict(self._online.named_buffers())
        for name, buffer in self.encoder.named_buffers():
            buffer.copy_(online_buffers[name])

    @torch.no_grad()
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.encoder(*args, **kwargs)


class MomentumQueue(nn.Module):
    """A fixed-size FIFO queue of L2-normalised keys ``[size, dim]`` and their labels.

    Labels (any shape per key, e.g. class ids, multi-hot rows or cluster paths) are optional; the
    first :meth:`enqueue` with labels fixes their shape and dtype. :meth:`contents` returns the
    filled part, oldest first.
    """

    def __init__(self, size: int, dim: int | None = None) -> None:
        super().__init__()
        if int(size) <= 0:
            raise LossInputError(f"queue size must be a positive number of keys, got {size}")
        self.size = int(size)
        self.register_buffer("keys", torch.zeros(0, dim or 0), persistent=True)
        self.register_buffer("labels", torch.zeros(0), persistent=True)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long), persistent=True)
        self.register_buffer("filled", torch.zeros((), dtype=torch.long), persistent=True)

    def __len__(self) -> int:
        return int(self.filled)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor | None = None, gather: bool = True) -> None:
        """Add ``keys`` ``[n, dim]`` (and ``labels`` ``[n, ...]``), replacing the oldest entries.

        With ``gather`` (default) the keys of every process are added, in rank order.
        """
        keys = torch.nn.functional.normalize(keys.detach().float(), dim=-1)
        if labels is not None and labels.shape[0] != keys.shape[0]:
            raise LossInputError(f"queue labels have {labels.shape[0]} rows but keys have {keys.shape[0]}")
        if gather:
            keys = distributed.gather_no_grad(keys)
            labels = None if labels is None else distributed.gather_no_grad(labels)
        self._allocate(keys, labels)
        keys, labels = keys[-self.size :], None if labels is None else labels[-self.size :]
        slots = (self.pointer + torch.arange(keys.shape[0], device=self.keys.device)) % self.size
        self.keys[slots] = keys.to(self.keys.device)
        if labels is not None:
            self.labels[slots] = labels.to(device=self.labels.device, dtype=self.labels.dtype)
        self.pointer.fill_(int((self.pointer + keys.shape[0]) % self.size))
        self.filled.fill_(min(self.size, int(self.filled) + keys.shape[0]))

    def contents(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The queued keys ``[filled, dim]`` and labels (``None`` without labels), oldest first."""
        filled = int(self.filled)
        if filled < self.size:
            order = torch.arange(filled, device=self.keys.device)
        else:
            order = (self.pointer + torch.arange(self.size, device=self.keys.device)) % self.size
        keys = self.keys[order] if self.keys.shape[0] else self.keys
        labels = self.labels[order] if self.labels.shape[0] == self.size else None
        return keys, labels

    def _allocate(self, keys: torch.Tensor, labels: torch.Tensor | None) -> None:
        if self.keys.shape[0] == 0:
            self.keys = keys.new_zeros((self.size, keys.shape[1]))
        elif self.keys.shape[1] != keys.shape[1]:
            raise LossInputError(f"queue holds keys of dim {self.keys.shape[1]}, got dim {keys.shape[1]}")
        if labels is not None and self.labels.shape[0] != self.size:
            self.labels = labels.new_zeros((self.size, *labels.shape[1:]))
        elif labels is not None and self.labels.shape[1:] != labels.shape[1:]:
            raise LossInputError(
                f"queue holds labels of shape {tuple(self.labels.shape[1:])} per key, got {tuple(labels.shape[1:])}"
            )


KeyQueue = MomentumQueue


def _check_momentum(momentum: float) -> None:
    if not 0.0 <= float(momentum) <= 1.0:
        raise LossInputError(f"momentum must be in [0, 1], got {momentum}")
