r"""Gradient caching ("GradCache"): contrastive batches larger than activation memory allows.

Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup", RepL4NLP 2021 (arXiv 2101.06983).

A contrastive loss couples every example of its batch, so the batch cannot be cut into
gradient-accumulation micro-batches without losing negatives and positives. But the loss reaches
the encoder's parameters :math:`\theta` only through the embeddings :math:`e_i`:

.. math::

    \frac{\partial L}{\partial \theta} = \sum_i \frac{\partial L}{\partial e_i}
    \frac{\partial e_i}{\partial \theta}

so one step runs in three passes, and its peak activation memory is that of one mini-batch:

1. :meth:`GradCache.embed`: embed the batch in mini-batches without building the graph, recording
   the random-number state before each mini-batch;
2. the caller computes the loss on the whole batch of cached embeddings (a leaf that requires
   grad, gathered across processes by the loss as usual) and back-propagates it, which fills
   :math:`\partial L / \partial e_i` and the gradients of the loss's own parameters;
3. :meth:`GradCache.backward`: re-embed each mini-batch with the graph under its recorded random
   state (dropout masks replay exactly) and back-propagate the cached embedding gradients.

The gradients equal those of one full-batch step whose forward pass ran mini-batch by mini-batch;
with a single mini-batch (or no dropout) they equal the plain full-batch step. The cost is one
extra forward pass of every mini-batch but the last: with ``keep_last_graph`` (the default on a
single process) pass 1 builds the last mini-batch's graph and pass 3 back-propagates it without
re-embedding, so a batch of ``n`` mini-batches costs ``n - 1`` extra forward passes, and a batch
of one mini-batch costs what the plain step costs. A data-parallel wrapper (DDP, FSDP) prepares
its gradient reduction in the forward pass, so there every mini-batch is re-embedded.

The same scheme is sentence-transformers' ``CachedMultipleNegativesRankingLoss``; here it serves
every hiercon loss, since each is a function of the batch's embeddings.

Inputs are view-major dicts (see :mod:`hiercon.modeling.views`): rows ``v * B + i`` hold view
``v`` of example ``i``. A mini-batch takes examples ``[start, stop)`` with all their views, so it
is itself view-major.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

from hiercon.errors import ConfigError

Encode = Callable[[dict[str, Any]], torch.Tensor]
"""Embeds a view-major input dict of ``m`` examples into ``[m, V, d]``."""


class RngState:
    """The CPU random state and the accelerator states of the devices ``tensors`` live on, taken now
    and replayed later (as activation checkpointing does)."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.cpu_state = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block from the recorded state; the states in force before it are restored after."""
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu_state)
            set_device_states(self.devices, self.device_states)
            yield


@dataclass
class CachedEmbeddings:
    """What the first pass leaves for the loss and the third pass."""

    embeddings: torch.Tensor
    """``[B, V, d]``, detached from the encoder, a leaf that requires grad."""
    keys: torch.Tensor | None
    """``[B, V, d]`` key embeddings (e.g. a momentum encoder's), or ``None``."""
    mini_batches: list[slice]
    rng_states: list[RngState]
    last_graph: torch.Tensor | None = None
    """The last mini-batch's embeddings with their graph (``keep_last_graph``), else ``None``."""


def batch_size_of(inputs: dict[str, Any]) -> int:
    """The number of examples of a model-input dict: the rows of its first tensor."""
    for value in inputs.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ConfigError(f"the batch holds no input tensor to count examples by (keys: {sorted(inputs)})")


def mini_batch_slices(batch_size: int, mini_batch_size: int) -> list[slice]:
    """Consecutive example ranges of ``mini_batch_size`` (the last may be shorter)."""
    return [
        slice(start, min(start + mini_batch_size, batch_size))
        for start in range(0, batch_size, mini_batch_size)
    ]


def view_rows(viewed: dict[str, Any], num_views: int, batch_size: int, examples: slice) -> dict[str, Any]:
    """The rows of ``examples`` in every view of a view-major dict, view-major again.

    Tensors with ``num_views * batch_size`` rows are sliced; anything else passes unchanged.
    """
    rows = num_views * batch_size
    index = torch.cat(
        [
            torch.arange(view * batch_size + examples.start, view * batch_size + examples.stop)
            for view in range(num_views)
        ]
    )
    return {
        key: value.index_select(0, index.to(value.device))
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows
        else value
        for key, value in viewed.items()
    }


def _input_tensors(inputs: dict[str, Any]) -> list[torch.Tensor]:
    return [value for value in inputs.values() if isinstance(value, torch.Tensor)]


class GradCache:
    """Embeds a contrastive batch ``mini_batch_size`` examples at a time (with all their views).

    Args:
        mini_batch_size: examples per encoder pass; it must divide the per-device batch size
            (:meth:`check_batch_size`). The last batch of an epoch may be shorter and is then split
            into full mini-batches and one shorter one.
        keep_last_graph: build the last mini-batch's graph in pass 1 and back-propagate it in pass 3
            instead of re-embedding it (one forward pass fewer per step). Turn it off when the
            encoder is wrapped for data parallelism, whose forward pass prepares the reduction.
    """

    def __init__(self, mini_batch_size: int, keep_last_graph: bool = True) -> None:
        if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
            raise ConfigError(f"mini_batch_size must be a positive integer or None, got {mini_batch_size!r}")
        self.mini_batch_size = mini_batch_size
        self.keep_last_graph = keep_last_graph

    def check_batch_size(self, batch_size: int, what: str = "per_device_train_batch_size") -> None:
        """Refuse a batch that mini-batches of this size do not tile."""
        if batch_size % self.mini_batch_size:
            raise ConfigError(
                f"mini_batch_size {self.mini_batch_size} does not divide {what} {batch_size}; "
                f"choose a divisor of {batch_size}"
            )

    def embed(
        self,
        encode: Encode,
        viewed: dict[str, Any],
        num_views: int,
        batch_size: int,
        encode_keys: Encode | None = None,
    ) -> CachedEmbeddings:
        """Pass 1: the batch's ``[B, V, d]`` embeddings without graph, and the random state of each
        mini-batch (``encode_keys``, when given, runs after ``encode`` on the same mini-batch)."""
        slices = mini_batch_slices(batch_size, self.mini_batch_size)
        parts: list[torch.Tensor] = []
        key_parts: list[torch.Tensor] = []
        states: list[RngState] = []
        last_graph = None
        for position, examples in enumerate(slices):
            inputs = view_rows(viewed, num_views, batch_size, examples)
            states.append(RngState(*_input_tensors(inputs)))
            keep = self.keep_last_graph and position == len(slices) - 1
            with torch.set_grad_enabled(keep and torch.is_grad_enabled()):
                part = encode(inputs)
            if keep and part.requires_grad:
                last_graph = part
            parts.append(part.detach())
            if encode_keys is not None:
                with torch.no_grad():
                    key_parts.append(encode_keys(inputs).detach())
        embeddings = torch.cat(parts).requires_grad_(True)
        keys = torch.cat(key_parts) if key_parts else None
        return CachedEmbeddings(embeddings, keys, slices, states, last_graph)

    def backward(
        self,
        encode: Encode,
        viewed: dict[str, Any],
        num_views: int,
        cached: CachedEmbeddings,
        no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        """Pass 3: re-embed each mini-batch with the graph under its recorded random state and
        back-propagate the gradient the loss left on ``cached.embeddings``.

        Every mini-batch but the last runs under ``no_sync`` (e.g. ``accelerator.no_sync(model)``),
        so data-parallel gradients are reduced once, after the last one.
        """
        grad = cached.embeddings.grad
        if grad is None:  # the loss did not depend on the embeddings; still run every pass in step
            grad = torch.zeros_like(cached.embeddings)
        batch_size = cached.embeddings.shape[0]
        replayed = list(zip(cached.mini_batches, cached.rng_states))
        if cached.last_graph is not None:  # its graph is alive: back-propagate it first, freeing it
            examples = cached.mini_batches[-1]
            torch.autograd.backward(cached.last_graph, grad[examples].to(cached.last_graph.dtype))
            cached.last_graph = None
            replayed = replayed[:-1]
        last = len(replayed) - 1
        for position, (examples, state) in enumerate(replayed):
            inputs = view_rows(viewed, num_views, batch_size, examples)
            sync = contextlib.nullcontext() if position == last else no_sync()
            with sync, state.replay():
                embeddings = encode(inputs)
                torch.autograd.backward(embeddings, grad[examples].to(embeddings.dtype))
