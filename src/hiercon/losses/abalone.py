r"""ABALONE: multi-label contrastive loss with label prototypes (Audibert, Gauffre, Amini 2024)."""

from __future__ import annotations

from typing import ClassVar

import torch

from hiercon.errors import LossInputError
from hiercon.losses.core import contrastive_loss
from hiercon.losses.labels import label_counts, label_overlap
from hiercon.losses.prototype import PrototypeContrastiveLoss

ABALONE_CITATION = """@article{audibert2024exploring,
  title   = {Exploring Contrastive Learning for Long-Tailed Multi-Label Text Classification},
  author  = {Audibert, Alexandre and Gauffre, Aur{\\'e}lien and Amini, Massih-Reza},
  journal = {arXiv preprint arXiv:2404.08720},
  year    = {2024}
}"""


def abalone_weights(
    anchor_labels: torch.Tensor, key_labels: torch.Tensor, valid: torch.Tensor, alpha: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Target weights on the sample keys ``[A, N]`` and on the prototypes ``[A, C]``.

    Each label :math:`c` of anchor :math:`i` spreads a mass of one over the samples
    :math:`j \ne i` with :math:`y_{jc} = 1` (weight :math:`\alpha / \mathrm{union}_{ij}`) and the
    prototype :math:`p_c` (weight 1), normalised by
    :math:`n_{ic} = 1 + \alpha \sum_{j \ne i} y_{jc} / \mathrm{union}_{ij}`:

    .. math::

        w_{ij} = \frac{\alpha}{\mathrm{union}_{ij}} \sum_{c \in y_i \cap y_j} \frac{1}{n_{ic}},
        \qquad w_{i,p_c} = \frac{y_{ic}}{n_{ic}}

    so an anchor's weights sum to :math:`|y_i|`.
    """
    _, union = label_overlap(anchor_labels, key_labels)
    pair_weights = valid * (alpha / union.clamp_min(1))
    spread = anchor_labels / (1.0 + pair_weights @ key_labels)
    return pair_weights * (spread @ key_labels.T), spread


class AbaloneLoss(PrototypeContrastiveLoss):
    r"""The :math:`L_{ABALONE}` loss of Audibert, Gauffre & Amini (arXiv 2404.08720).

    Keys are the batch's samples and the ``num_labels`` learnable prototypes :math:`p_c`.
    With the weights :math:`w` of :func:`abalone_weights`, sample logits
    :math:`l_{ij} = z_i \cdot z_j / \tau`, prototype logits :math:`l_{ic} = z_i \cdot p_c / \tau`
    and a denominator whose sample terms are down-weighted by :math:`\beta`,

    .. math::

        Z_i = \beta \sum_{j \ne i} e^{l_{ij}} + \sum_{c=1}^{C} e^{l_{ic}}, \qquad
        L = \frac{1}{|B^+|} \sum_{i \in B^+} \frac{1}{|y_i|} \Big[ -\sum_{j \ne i} w_{ij}
            (l_{ij} - \log Z_i) - \sum_{c} w_{i,p_c} (l_{ic} - \log Z_i) \Big]

    :math:`B^+` holds the items (views) with at least one label; items without labels are
    neither anchors nor positives, only negatives.
    """

    citation: ClassVar[str] = ABALONE_CITATION

    def __init__(
        self,
        num_labels: int,
        embedding_dim: int,
        temperature: float = 0.1,
        alpha: float = 1.0,
        beta: float = 0.1,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(num_labels, embedding_dim, temperature, gather_across_processes)
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not float(value) >= 0 or value == float("inf"):
                raise LossInputError(f"{name} must be a finite number >= 0, got {value!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch, prototypes, anchor_labels, key_labels = self.pair_batch_with_prototypes(embeddings, labels)
        dtype = prototypes.dtype
        not_self = ~batch.self_mask
        sample_weights, prototype_weights = abalone_weights(anchor_labels, key_labels, not_self, self.alpha)
        all_prototypes = torch.ones_like(prototype_weights, dtype=torch.bool)
        denominator = torch.cat(
            [torch.full_like(sample_weights, self.beta), torch.ones_like(prototype_weights)], dim=1
        )
        return contrastive_loss(
            batch.anchors,
            torch.cat([batch.keys.to(dtype), prototypes], dim=0),
            torch.cat([sample_weights, prototype_weights], dim=1),
            torch.cat([not_self, all_prototypes], dim=1),
            self.temperature,
            denominator_weights=denominator,
            row_normalize=False,
            anchor_weights=1.0 / label_counts(anchor_labels).clamp_min(1),
            across_processes=batch.across_processes,
        )
