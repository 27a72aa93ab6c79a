r"""Checking and converting the ``labels`` a loss receives, and the label-overlap matrices.

Two label kinds reach the losses:

- **class ids**: an integer tensor ``[B]``; a negative id marks an item without a label;
- **multi-hot**: a ``[B, C]`` tensor of 0/1 (bool, integer or float); an all-zero row marks an
  item without a label.

The multi-label losses compare label sets through

.. math::

    \mathrm{inter}_{ab} = (Y_a Y_b^\top)_{ab}, \qquad
    \mathrm{union}_{ab} = |y_a| + |y_b| - \mathrm{inter}_{ab},

never through a ``B x B x C`` tensor.
"""

from __future__ import annotations

import torch

from hiercon.errors import LossInputError
from hiercon.losses.core import PairBatch, build_pair_batch, check_embeddings, compute_dtype
from hiercon.taxonomy.label_space import check_multi_hot as check_label_matrix


def _check_tensor(labels: object, name: str) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise LossInputError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    return labels


def _check_rows(labels: torch.Tensor, batch: int | None, name: str) -> None:
    if batch is not None and labels.shape[0] != batch:
        raise LossInputError(
            f"{name} has {labels.shape[0]} rows but the batch has {batch} items; they must match"
        )


def is_multi_hot(labels: torch.Tensor) -> bool:
    """True for a ``[B, C]`` label tensor (multi-hot), False for ``[B]`` class ids."""
    return labels.dim() == 2


def check_class_ids(labels: object, batch: int | None = None, name: str = "labels") -> torch.Tensor:
    """Validate integer class ids ``[B]`` (negative = no label) and return them as ``int64``."""
    labels = _check_tensor(labels, name)
    if labels.dim() != 1:
        raise LossInputError(
            f"{name} must be class ids of shape [batch], got shape {tuple(labels.shape)}"
            + (" (multi-hot labels do not fit this loss)" if labels.dim() == 2 else "")
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise LossInputError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    _check_rows(labels, batch, name)
    return labels.long()


def check_multi_hot(
    labels: object,
    batch: int | None = None,
    num_labels: int | None = None,
    name: str = "labels",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Validate a multi-hot ``[B, C]`` tensor of 0/1 and return it as ``dtype``."""
    labels = _check_tensor(labels, name)
    check_label_matrix(labels, name, error=LossInputError)
    _check_rows(labels, batch, name)
    if num_labels is not None and labels.shape[1] != num_labels:
        raise LossInputError(
            f"{name} has {labels.shape[1]} columns but the loss was built for {num_labels} labels"
        )
    return labels.to(dtype)


def multi_hot_pair_batch(
    embeddings: torch.Tensor,
    labels: object,
    gather: bool,
    num_labels: int | None = None,
    dtype: torch.dtype | None = None,
) -> PairBatch:
    """Check ``[B, V, d]`` embeddings and their ``[B, C]`` multi-hot labels, and build the pair batch.

    Labels are cast to ``dtype`` (default: the embeddings' compute dtype); ``num_labels`` fixes ``C``.
    """
    embeddings = check_embeddings(embeddings)
    dtype = dtype if dtype is not None else compute_dtype(embeddings)
    labels = check_multi_hot(labels, embeddings.shape[0], num_labels=num_labels, dtype=dtype)
    return build_pair_batch(embeddings, labels, gather=gather)


def label_counts(multi_hot: torch.Tensor) -> torch.Tensor:
    """``|y_a|``: the number of labels of each row."""
    return multi_hot.sum(dim=1)


def label_overlap(anchor_labels: torch.Tensor, key_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inter, union)``, both ``[A, N]``: shared labels and labels in either set, per pair."""
    inter = anchor_labels @ key_labels.T
    union = label_counts(anchor_labels)[:, None] + label_counts(key_labels)[None, :] - inter
    return inter, union
