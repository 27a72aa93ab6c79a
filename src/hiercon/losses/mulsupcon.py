r"""MulSupCon: label-wise anchors for multi-label supervised contrastive learning (Zhang & Wu 2024)."""

from __future__ import annotations

from typing import ClassVar

import torch

from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.core import contrastive_loss
from hiercon.losses.labels import label_counts, multi_hot_pair_batch

MULSUPCON_CITATION = """@inproceedings{zhang2024multilabel,
  title     = {Multi-Label Supervised Contrastive Learning},
  author    = {Zhang, Pingyue and Wu, Mengyue},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {38},
  number    = {15},
  pages     = {16786--16793},
  year      = {2024}
}"""


def mulsupcon_weights(
    anchor_labels: torch.Tensor, key_labels: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-anchor target weights ``[A, N]`` summing the label-wise anchors, and their count ``[A]``.

    Label-wise anchor :math:`(a, c)` has positives :math:`P(a, c) = \{k : D_{ak}, y_{kc} = 1\}`
    and weight :math:`1/|P(a,c)|` on each, so
    :math:`W_{ak} = D_{ak} \sum_{c \in y_a,\,|P(a,c)| > 0} y_{kc} / |P(a,c)|`, a matrix product.
    The count is the number of label-wise anchors of ``a`` that have a positive.
    """
    positives_per_label = valid.to(key_labels.dtype) @ key_labels
    pairs = anchor_labels * (positives_per_label > 0)
    weights = ((pairs / positives_per_label.clamp_min(1)) @ key_labels.T) * valid
    return weights, pairs.sum(dim=1)


class MulSupConLoss(ContrastiveLoss):
    r"""Multi-label supervised contrastive loss of Zhang & Wu (AAAI 2024).

    Every label :math:`c` of an item :math:`i` makes an anchor :math:`(i, c)` whose positives are
    :math:`P(i,c) = \{j \ne i : y_{jc} = 1\}`; all label-wise anchors of :math:`i` share its
    softmax :math:`p_{ij} = e^{l_{ij}} / \sum_{k \ne i} e^{l_{ik}}`:

    .. math::

        L = \frac{1}{\#\mathrm{pairs}} \sum_{(i,c)} \frac{-1}{|P(i,c)|} \sum_{j \in P(i,c)} \log p_{ij}

    With views, :math:`j` runs over views and the item's other views are positives for each of
    its labels. Label-wise anchors without a positive are dropped (they do not count in
    :math:`\#\mathrm{pairs}`). ``with_weight=True`` weighs each pair by :math:`1/|y_i|` and
    divides by the number of anchors that have a pair instead, the official ``with_weight``
    option (:math:`1/(|y_i| B)`). Computed as one :math:`[A, N]` weight matrix
    (:func:`mulsupcon_weights`), never a :math:`B \times B \times C` tensor.
    """

    citation: ClassVar[str] = MULSUPCON_CITATION
    label_kind: ClassVar[str] = "multi_hot"

    def __init__(
        self, temperature: float = 0.1, with_weight: bool = False, gather_across_processes: bool = True
    ) -> None:
        super().__init__(temperature, gather_across_processes)
        self.with_weight = with_weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch = multi_hot_pair_batch(embeddings, labels, gather=self.gather_across_processes)
        not_self = ~batch.self_mask
        weights, pairs = mulsupcon_weights(batch.anchor_labels, batch.key_labels, not_self)
        if self.with_weight:
            anchor_weights = 1.0 / label_counts(batch.anchor_labels).clamp_min(1)
            normalizer = "valid_anchors"
        else:
            weights = weights / pairs.clamp_min(1)[:, None]
            anchor_weights, normalizer = pairs, "weights"
        return contrastive_loss(
            batch.anchors,
            batch.keys,
            weights,
            not_self,
            self.temperature,
            row_normalize=False,
            anchor_weights=anchor_weights,
            normalizer=normalizer,
            across_processes=batch.across_processes,
        )
