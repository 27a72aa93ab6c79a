r"""The pairwise contrastive core that every hiercon loss is built on.

A loss is a set of anchors ``Q`` (``[A, d]``) scored against candidate keys ``K`` (``[N, d]``)
through four matrices that the loss's builder derives from labels, hierarchies, clusters or
rankings (the core never sees labels):

- ``valid`` ``D`` (``[A, N]`` bool): which keys enter the anchor's denominator;
- ``positive_weights`` ``W`` (``[A, N]``, ``>= 0``): the anchor's positive targets (``W > 0`` only
  where ``D`` holds);
- ``denominator_weights`` ``beta`` (``[A, N]``, optional): weights of the denominator terms;
- ``anchor_weights`` ``omega`` (``[A]``, optional): weights of the anchors in the mean.

With logits :math:`l_{ak} = q_a \cdot k_k / \tau` (float32, also under autocast),

.. math::

    \log p_{ak} = l_{ak} - \log \sum_{k' : D_{ak'}} \beta_{ak'} e^{l_{ak'}}

and the per-anchor reductions

- ``"out"`` (SupCon :math:`L_{out}`): :math:`-\sum_k \tilde W_{ak} \log p_{ak}`, with
  :math:`\tilde W` row-normalised when ``row_normalize``;
- ``"in"`` (SupCon :math:`L_{in}`, RINCE sum-in-log): :math:`-\log \sum_k \tilde W_{ak} p_{ak}`;
- ``"per_positive"`` (RINCE sum-out-log): each positive against itself and the negatives only,
  :math:`-\sum_k \tilde W_{ak} \log \frac{e^{l_{ak}}}{e^{l_{ak}} + \sum_{n \in N(a)} \beta_{an} e^{l_{an}}}`.

Masking is by ``-inf`` and ``logsumexp``, never by multiplying with zero. Anchors without a
positive (or without any valid key) contribute nothing; a batch with none returns a zero that
still backpropagates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from hiercon.errors import LossInputError
from hiercon.losses import distributed

Reduction = Literal["out", "in", "per_positive"]
Normalizer = Literal["valid_anchors", "anchors", "weights"]

_REDUCTIONS = ("out", "in", "per_positive")
_NORMALIZERS = ("valid_anchors", "anchors", "weights")


def check_temperature(temperature: float | torch.Tensor, name: str = "temperature") -> None:
    """Refuse non-positive or non-finite temperatures with an error naming the argument."""
    value = torch.as_tensor(temperature, dtype=torch.float64)
    if value.numel() == 0 or not bool(torch.isfinite(value).all()) or bool((value <= 0).any()):
        raise LossInputError(f"{name} must be positive and finite, got {temperature!r}")


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype the core computes in: float32, or float64 when an input is float64."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def similarity_logits(
    anchors: torch.Tensor, keys: torch.Tensor, temperature: float | torch.Tensor
) -> torch.Tensor:
    """``anchors @ keys.T / temperature`` in at least float32, whatever the autocast context.

    Half-precision inputs are computed in float32; float64 inputs stay float64.
    ``temperature`` is a scalar, a per-key ``[N]`` tensor, or an ``[A, N]`` tensor.
    """
    dtype = compute_dtype(anchors, keys)
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        logits = anchors.to(dtype) @ keys.to(dtype).T
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.to(device=logits.device, dtype=dtype)
        return logits / temperature


def masked_log_softmax(
    logits: torch.Tensor,
    valid: torch.Tensor,
    denominator_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Row-wise ``log softmax`` over the keys where ``valid`` holds (optionally ``beta``-weighted).

    The result is finite everywhere: entries outside ``valid`` hold ``logit - log Z`` too, so the
    caller must select positives with ``torch.where`` (never multiply an ``-inf`` by zero). Rows
    with no valid key are left unnormalised; the reductions drop those anchors.
    """
    valid = valid.bool()
    if denominator_weights is not None:
        valid = valid & (denominator_weights > 0)
    row_has_key = valid.any(dim=1, keepdim=True)
    masked = logits.masked_fill(~valid & row_has_key, float("-inf"))
    if denominator_weights is not None:
        log_beta = torch.where(valid, denominator_weights.to(logits.dtype).clamp_min(1e-38).log(), 0.0)
        masked = masked + log_beta
    return logits - torch.logsumexp(masked, dim=1, keepdim=True)


def _normalised_weights(positive_weights: torch.Tensor, row_normalize: bool) -> torch.Tensor:
    weights = positive_weights
    if row_normalize:
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return weights


def anchor_losses(
    logits: torch.Tensor,
    positive_weights: torch.Tensor,
    valid: torch.Tensor,
    denominator_weights: torch.Tensor | None = None,
    reduction: Reduction = "out",
    row_normalize: bool = True,
    gradient_regularization: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor loss ``[A]`` and the mask of anchors that count (a positive and a valid key).

    ``gradient_regularization`` adds REG's term
    :math:`-\\sum_k \\mathrm{sg}(\\max(p_{ak} - W_{ak}, 0)) 1[W_{ak} > 0] l_{ak}` (Audibert et al.).
    """
    if reduction not in _REDUCTIONS:
        raise LossInputError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    valid = valid.bool()
    positive = (positive_weights > 0) & valid
    counted = positive.any(dim=1) & valid.any(dim=1)
    positive_weights = positive_weights.to(logits.dtype)
    weights = _normalised_weights(torch.where(positive, positive_weights, 0.0), row_normalize)

    if reduction == "per_positive":
        negatives = valid & ~positive
        neg_logits = logits.masked_fill(~negatives, float("-inf"))
        if denominator_weights is not None:
            log_beta = torch.where(
                negatives, denominator_weights.to(logits.dtype).clamp_min(1e-38).log(), 0.0
            )
            neg_logits = neg_logits + log_beta
        has_neg = negatives.any(dim=1, keepdim=True)
        log_neg = torch.logsumexp(torch.where(has_neg, neg_logits, 0.0), dim=1, keepdim=True)
        log_neg = torch.where(has_neg, log_neg, float("-inf"))
        logp = logits - torch.logaddexp(logits, log_neg)
    else:
        logp = masked_log_softmax(logits, valid, denominator_weights)

    if reduction == "in":
        log_w = torch.where(positive, weights.clamp_min(1e-38).log(), 0.0)
        terms = torch.where(positive, logp + log_w, float("-inf"))
        terms = torch.where(counted[:, None], terms, 0.0)
        losses = -torch.logsumexp(terms, dim=1)
    else:
        losses = -(weights * torch.where(positive, logp, 0.0)).sum(dim=1)

    if gradient_regularization:
        share = torch.where(positive, logp.detach(), float("-inf")).exp()
        surplus = torch.where(positive, share - positive_weights, 0.0).clamp_min(0.0)
        losses = losses - (surplus * logits).sum(dim=1)
    losses = torch.where(counted, losses, 0.0)
    return losses, counted


def reduce_anchors(
    losses: torch.Tensor,
    counted: torch.Tensor,
    anchor_weights: torch.Tensor | None = None,
    normalizer: Normalizer | float = "valid_anchors",
    across_processes: bool = False,
) -> torch.Tensor:
    """Weighted mean of the counted anchors' losses.

    ``normalizer`` divides by the number of counted anchors, of all anchors, the counted anchors'
    total weight, or a given number. With ``across_processes`` the count is global and the result
    is multiplied by the world size, so that the data-parallel mean of the processes' gradients
    equals the gradient of one process holding the whole batch.
    """
    dtype = losses.dtype
    weights = counted.to(dtype) if anchor_weights is None else anchor_weights.to(dtype) * counted.to(dtype)
    total = (weights * losses).sum()
    if isinstance(normalizer, str):
        if normalizer not in _NORMALIZERS:
            raise LossInputError(f"normalizer must be one of {_NORMALIZERS} or a number, got {normalizer!r}")
        if normalizer == "valid_anchors":
            count = counted.to(dtype).sum()
        elif normalizer == "anchors":
            count = torch.tensor(float(losses.shape[0]), device=losses.device, dtype=dtype)
        else:
            count = weights.sum()
        count = count.detach()
        if across_processes and distributed.is_distributed():
            count = distributed.sum_across_processes(count) / distributed.world_size()
    else:
        count = torch.tensor(float(normalizer), device=losses.device, dtype=dtype)
    # No counted anchor: total is an exact 0 that still backpropagates (no host sync on count).
    return total / count.clamp_min(1e-12)


def contrastive_loss(
    anchors: torch.Tensor,
    keys: torch.Tensor,
    positive_weights: torch.Tensor,
    valid: torch.Tensor,
    temperature: float | torch.Tensor,
    *,
    denominator_weights: torch.Tensor | None = None,
    reduction: Reduction = "out",
    row_normalize: bool = True,
    gradient_regularization: bool = False,
    anchor_weights: torch.Tensor | None = None,
    normalizer: Normalizer | float = "valid_anchors",
    scale: float = 1.0,
    across_processes: bool = False,
) -> torch.Tensor:
    """The whole core in one call: logits, masked log-softmax, per-anchor reduction, anchor mean."""
    logits = similarity_logits(anchors, keys, temperature)
    losses, counted = anchor_losses(
        logits,
        positive_weights,
        valid,
        denominator_weights=denominator_weights,
        reduction=reduction,
        row_normalize=row_normalize,
        gradient_regularization=gradient_regularization,
    )
    return scale * reduce_anchors(losses, counted, anchor_weights, normalizer, across_processes)


@dataclass
class PairBatch:
    """Local anchors and global keys of a (possibly multi-view, possibly distributed) batch.

    Views are flattened item-major: local item ``i``'s view ``v`` is anchor row ``i * V + v``.
    ``keys`` holds every process's views (with gradient) in the same layout; ``anchor_positions``
    gives each anchor's own row in ``keys`` and ``key_items`` / ``anchor_items`` the global item
    index of each row, so ``self_mask`` and ``same_item`` follow directly.
    """

    anchors: torch.Tensor
    keys: torch.Tensor
    anchor_items: torch.Tensor
    key_items: torch.Tensor
    anchor_positions: torch.Tensor
    anchor_labels: torch.Tensor | None
    key_labels: torch.Tensor | None
    num_views: int
    across_processes: bool

    @property
    def self_mask(self) -> torch.Tensor:
        """``[A, N]``: the key is the anchor itself."""
        columns = torch.arange(self.keys.shape[0], device=self.keys.device)
        return self.anchor_positions[:, None] == columns[None, :]

    @property
    def same_item(self) -> torch.Tensor:
        """``[A, N]``: the key is a view of the anchor's item (the anchor itself included)."""
        return self.anchor_items[:, None] == self.key_items[None, :]


def check_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    """Accept ``[B, d]`` or ``[B, V, d]``; return ``[B, V, d]``."""
    if not isinstance(embeddings, torch.Tensor):
        raise LossInputError(f"embeddings must be a torch.Tensor, got {type(embeddings).__name__}")
    if not embeddings.is_floating_point():
        raise LossInputError(f"embeddings must be a floating-point tensor, got dtype {embeddings.dtype}")
    if embeddings.dim() == 2:
        embeddings = embeddings[:, None, :]
    if embeddings.dim() != 3:
        raise LossInputError(
            f"embeddings must have shape [batch, dim] or [batch, views, dim], got {tuple(embeddings.shape)}"
        )
    if embeddings.shape[0] == 0:
        raise LossInputError("embeddings is an empty batch (batch size 0)")
    return embeddings


def build_pair_batch(
    embeddings: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    gather: bool = True,
    normalize: bool = True,
) -> PairBatch:
    """Flatten views, L2-normalise and (under ``torch.distributed``) gather keys and labels.

    ``labels`` has one row per item (``[B]`` or ``[B, ...]``); it is repeated for each view.
    """
    embeddings = check_embeddings(embeddings)
    batch, views, dim = embeddings.shape
    if labels is not None and labels.shape[0] != batch:
        raise LossInputError(
            f"labels has {labels.shape[0]} rows but embeddings has {batch} items; they must match"
        )
    flat = embeddings.reshape(batch * views, dim)
    if normalize:
        flat = F.normalize(flat.to(compute_dtype(flat)), dim=-1)
    device = flat.device
    local_items = torch.arange(batch, device=device).repeat_interleave(views)
    anchor_labels = None if labels is None else labels.repeat_interleave(views, dim=0)

    across = gather and distributed.is_distributed()
    if across:
        keys = distributed.gather_with_grad(flat)
        item_offset = distributed.local_offset(batch, device)
        key_labels = None if anchor_labels is None else distributed.gather_no_grad(anchor_labels)
        key_items = torch.arange(keys.shape[0] // views, device=device).repeat_interleave(views)
    else:
        keys, item_offset, key_labels, key_items = flat, 0, anchor_labels, local_items
    anchor_items = local_items + item_offset
    anchor_positions = torch.arange(batch * views, device=device) + item_offset * views
    return PairBatch(
        anchors=flat,
        keys=keys,
        anchor_items=anchor_items,
        key_items=key_items,
        anchor_positions=anchor_positions,
        anchor_labels=anchor_labels,
        key_labels=key_labels,
        num_views=views,
        across_processes=across,
    )
