r"""Learnable label prototypes, and the prototype-only contrastive loss (``proto`` of Audibert et al.)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hiercon.errors import LossInputError
from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.core import PairBatch, check_embeddings, compute_dtype, contrastive_loss
from hiercon.losses.jaccard_supcon import AUDIBERT_CITATION
from hiercon.losses.labels import multi_hot_pair_batch


class PrototypeContrastiveLoss(ContrastiveLoss):
    """A loss that owns one learnable prototype per label (``prototypes``, ``[C, d]``, Xavier init).

    Prototypes are L2-normalised before use, like the embeddings. Under data parallelism they
    are replicated parameters: the mean of the processes' gradients is the gradient of one
    process holding the whole batch. DDP does not wrap the loss, so
    :class:`~hiercon.training.ContrastiveTrainer` averages these gradients itself
    (:func:`hiercon.losses.distributed.average_gradients`).
    """

    label_kind: ClassVar[str] = "multi_hot"

    def __init__(
        self,
        num_labels: int,
        embedding_dim: int,
        temperature: float = 0.1,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(temperature, gather_across_processes)
        for name, value in (("num_labels", num_labels), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LossInputError(f"{name} must be a positive integer, got {value!r}")
        self.num_labels = num_labels
        self.embedding_dim = embedding_dim
        self.prototypes = nn.Parameter(torch.empty(num_labels, embedding_dim))
        nn.init.xavier_uniform_(self.prototypes)

    def unit_prototypes(self, like: torch.Tensor) -> torch.Tensor:
        """The L2-normalised prototypes, in the compute dtype of ``like`` and the prototypes."""
        dtype = compute_dtype(like, self.prototypes)
        return F.normalize(self.prototypes.to(dtype), dim=-1)

    def pair_batch(self, embeddings: torch.Tensor, labels: torch.Tensor, gather: bool) -> PairBatch:
        """Check embeddings and multi-hot labels against the prototypes and build the pair batch."""
        embeddings = check_embeddings(embeddings)
        if embeddings.shape[-1] != self.embedding_dim:
            raise LossInputError(
                f"embeddings have dimension {embeddings.shape[-1]} but the prototypes have "
                f"embedding_dim={self.embedding_dim}"
            )
        dtype = compute_dtype(embeddings, self.prototypes)
        return multi_hot_pair_batch(embeddings, labels, gather, num_labels=self.num_labels, dtype=dtype)

    def pair_batch_with_prototypes(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[PairBatch, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pair batch (gathered when ``gather_across_processes``), the unit prototypes, and the
        anchors' and keys' labels in the prototypes' compute dtype."""
        batch = self.pair_batch(embeddings, labels, gather=self.gather_across_processes)
        prototypes = self.unit_prototypes(batch.anchors)
        dtype = prototypes.dtype
        return batch, prototypes, batch.anchor_labels.to(dtype), batch.key_labels.to(dtype)


class PrototypeLoss(PrototypeContrastiveLoss):
    r"""Cosine-softmax over label prototypes with a uniform target over the true labels.

    With unit embeddings :math:`z_i`, unit prototypes :math:`p_c` and temperature :math:`\tau`
    (the ``proto`` loss of Audibert, Gauffre, Amini 2024):

    .. math::

        L = \frac{1}{|B^+|} \sum_{i \in B^+} \frac{-1}{|y_i|} \sum_{c \in y_i}
            \log \frac{e^{z_i \cdot p_c / \tau}}{\sum_{c'=1}^{C} e^{z_i \cdot p_{c'} / \tau}}

    :math:`B^+` holds the items (views) with at least one label; the others add nothing.
    """

    citation: ClassVar[str] = AUDIBERT_CITATION

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch = self.pair_batch(embeddings, labels, gather=False)
        prototypes = self.unit_prototypes(batch.anchors)
        targets = batch.anchor_labels.to(prototypes.dtype)
        return contrastive_loss(
            batch.anchors,
            prototypes,
            targets,
            torch.ones_like(targets, dtype=torch.bool),
            self.temperature,
            across_processes=self.gather_across_processes,
        )
