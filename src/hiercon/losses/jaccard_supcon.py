r"""Jaccard-weighted SupCon for multi-label data (the ``base`` loss of Audibert et al.)."""

from __future__ import annotations

from typing import ClassVar

import torch

from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.core import contrastive_loss
from hiercon.losses.labels import label_overlap, multi_hot_pair_batch

AUDIBERT_CITATION = """@article{audibert2024multilabel,
  title   = {Multi-Label Contrastive Learning: A Comprehensive Study},
  author  = {Audibert, Alexandre and Gauffre, Aur{\\'e}lien and Amini, Massih-Reza},
  journal = {arXiv preprint arXiv:2412.00101},
  year    = {2024}
}"""


def jaccard_weights(anchor_labels: torch.Tensor, key_labels: torch.Tensor) -> torch.Tensor:
    """``[A, N]`` Jaccard similarity ``inter / union`` of the label sets (0 where both are empty)."""
    inter, union = label_overlap(anchor_labels, key_labels)
    return inter / union.clamp_min(1)


class JaccardSupConLoss(ContrastiveLoss):
    r"""SupCon whose positives are weighted by label-set overlap (Audibert, Gauffre, Amini 2024).

    With :math:`w_{ij} = |y_i \cap y_j| / |y_i \cup y_j|` for :math:`j \ne i`, row-normalised to
    :math:`\tilde w_{ij} = w_{ij} / \sum_k w_{ik}`, and
    :math:`p_{ij} = e^{l_{ij}} / \sum_{k \ne i} e^{l_{ik}}`,

    .. math::

        L = \frac{1}{|A^+|} \sum_{i \in A^+} - \sum_{j \ne i} \tilde w_{ij} \log p_{ij}

    where :math:`A^+` holds the anchors that share a label with at least one other view;
    the other anchors add nothing. On single-label (one-hot) data this is SupCon. Labels are
    multi-hot ``[B, C]``; an item's other views are positives with weight 1.
    """

    citation: ClassVar[str] = AUDIBERT_CITATION
    label_kind: ClassVar[str] = "multi_hot"

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch = multi_hot_pair_batch(embeddings, labels, gather=self.gather_across_processes)
        not_self = ~batch.self_mask
        weights = jaccard_weights(batch.anchor_labels, batch.key_labels) * not_self
        return contrastive_loss(
            batch.anchors,
            batch.keys,
            weights,
            not_self,
            self.temperature,
            across_processes=batch.across_processes,
        )
