r"""REG: the gradient-regularised multi-label contrastive loss of Audibert, Gauffre & Amini (2024)."""

from __future__ import annotations

from typing import ClassVar

import torch

from hiercon.errors import LossInputError
from hiercon.losses import distributed
from hiercon.losses.core import contrastive_loss
from hiercon.losses.jaccard_supcon import AUDIBERT_CITATION
from hiercon.losses.labels import label_counts, label_overlap
from hiercon.losses.prototype import PrototypeContrastiveLoss


def overlap_affinity(anchor_labels: torch.Tensor, key_labels: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""``[A, N]`` :math:`f(x_{ab})` with :math:`x_{ab} = |y_a \cap y_b| / |y_b|` (0 without overlap).

    :math:`f(x) = x^\alpha` for :math:`\alpha \ge 0`; for :math:`\alpha < 0`, the hard threshold
    :math:`f(x) = 1[x = 1]` (the key's labels are a subset of the anchor's).
    """
    inter, _ = label_overlap(anchor_labels, key_labels)
    key_sizes = label_counts(key_labels)[None, :]
    if alpha < 0:
        return ((inter == key_sizes) & (inter > 0)).to(inter.dtype)
    share = inter / key_sizes.clamp_min(1)
    return torch.where(inter > 0, share.pow(alpha), 0.0)


def reg_target_weights(
    anchor_labels: torch.Tensor, key_labels: torch.Tensor, valid: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    r"""REG's targets ``[A, N]``:
    :math:`W_{ab} = \frac{1}{|y_a|} \sum_{c \in y_a \cap y_b} \frac{f(x_{ab})}{n_{ac}}`, with
    :math:`n_{ac} = \sum_{b : D_{ab}, y_{bc} = 1} f(x_{ab})`.

    A row sums to one when each label of the anchor has a valid key carrying it.
    """
    affinity = overlap_affinity(anchor_labels, key_labels, alpha) * valid
    per_label = affinity @ key_labels
    spread = torch.where(per_label > 0, anchor_labels / per_label.clamp_min(1e-12), 0.0)
    return affinity * (spread @ key_labels.T) / label_counts(anchor_labels).clamp_min(1)[:, None]


def reg_target_weights_with_prototypes(
    anchor_labels: torch.Tensor, key_labels: torch.Tensor, sample_valid: torch.Tensor, alpha: float = 1.0
) -> torch.Tensor:
    r""":func:`reg_target_weights` over the items "samples then prototypes", block by block.

    Anchors are ``anchor_labels`` (``[A, C]``) then the ``C`` prototypes, keys ``key_labels``
    (``[N, C]``) then the prototypes; ``sample_valid`` (``[A, N]``) marks the valid sample pairs.
    Prototype :math:`c` carries :math:`\{c\}`, so every block but the sample-sample one is
    :math:`O(NC)`: a sample anchor reaches prototype :math:`c` with :math:`f(1) = 1` when it holds
    :math:`c`; prototype :math:`c` reaches sample :math:`b` holding :math:`c` with
    :math:`f(1/|y_b|)`; two prototypes never share a label. Returns ``[A + C, N + C]``.
    """
    sample_affinity = overlap_affinity(anchor_labels, key_labels, alpha) * sample_valid
    prototype_affinity = _prototype_affinity(key_labels, alpha)

    per_label = sample_affinity @ key_labels + anchor_labels
    spread = torch.where(per_label > 0, anchor_labels / per_label.clamp_min(1e-12), 0.0)
    sizes = label_counts(anchor_labels).clamp_min(1)[:, None]
    sample_to_sample = sample_affinity * (spread @ key_labels.T) / sizes
    sample_to_prototype = anchor_labels * spread / sizes

    prototype_mass = prototype_affinity.sum(dim=1, keepdim=True)
    prototype_to_sample = torch.where(
        prototype_mass > 0, prototype_affinity / prototype_mass.clamp_min(1e-12), 0.0
    )
    prototype_to_prototype = torch.zeros_like(prototype_mass).expand(-1, key_labels.shape[1])
    return torch.cat(
        [
            torch.cat([sample_to_sample, sample_to_prototype], dim=1),
            torch.cat([prototype_to_sample, prototype_to_prototype], dim=1),
        ]
    )


def _prototype_affinity(key_labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """``[C, N]`` :func:`overlap_affinity` of the prototypes (label sets ``{c}``) to the keys."""
    holds = key_labels.T > 0
    key_sizes = label_counts(key_labels)[None, :]
    if alpha < 0:
        return (holds & (key_sizes == 1)).to(key_labels.dtype)
    return torch.where(holds, (1.0 / key_sizes.clamp_min(1)).pow(alpha), 0.0)


class RegLoss(PrototypeContrastiveLoss):
    r"""Multi-label contrastive loss with gradient regularisation ("REG", arXiv 2412.00101).

    Items are the batch's samples and the ``num_labels`` learnable prototypes (prototype
    :math:`c` carries the label set :math:`\{c\}`); every item is an anchor against all other
    items. With the targets :math:`W` of :func:`reg_target_weights` and
    :math:`p_{ab} = e^{l_{ab}} / \sum_{k \ne a} e^{l_{ak}}`,

    .. math::

        L_a = -\sum_b W_{ab} \log p_{ab}
              - \sum_b \mathrm{sg}\big(\max(p_{ab} - W_{ab}, 0)\big)\, 1[W_{ab} > 0]\, l_{ab},
        \qquad L = \frac{1}{\#\{a : \sum_b W_{ab} > 0\}} \sum_a L_a

    The second term (``gradient_regularization``) stops pulling a positive once its softmax
    share exceeds its target; without it this is the ``mscwrg`` ablation. ``alpha`` shapes
    :math:`f(x) = x^\alpha`; a negative ``alpha`` keeps only keys whose labels the anchor holds.
    The targets are built block-wise (:func:`reg_target_weights_with_prototypes`), so the cost
    is :math:`O(B^2 C)` for the label products, not :math:`O((B + C)^2 C)`. Under data
    parallelism every process holds the prototype anchors; each weighs them by
    ``1 / world_size`` so that the mean over processes counts them once.
    """

    citation: ClassVar[str] = AUDIBERT_CITATION

    def __init__(
        self,
        num_labels: int,
        embedding_dim: int,
        temperature: float = 0.1,
        alpha: float = 1.0,
        gradient_regularization: bool = True,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(num_labels, embedding_dim, temperature, gather_across_processes)
        if not abs(float(alpha)) < float("inf"):
            raise LossInputError(f"alpha must be a finite number, got {alpha!r}")
        self.alpha = float(alpha)
        self.gradient_regularization = gradient_regularization

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        batch, prototypes, anchor_labels, key_labels = self.pair_batch_with_prototypes(embeddings, labels)
        dtype = prototypes.dtype
        not_self = ~_item_self_mask(batch.self_mask, self.num_labels)
        weights = reg_target_weights_with_prototypes(anchor_labels, key_labels, ~batch.self_mask, self.alpha)
        anchor_weights = torch.ones(weights.shape[0], dtype=dtype, device=prototypes.device)
        anchor_weights[batch.anchors.shape[0] :] = 1.0 / (
            distributed.world_size() if batch.across_processes else 1
        )
        return contrastive_loss(
            torch.cat([batch.anchors.to(dtype), prototypes]),
            torch.cat([batch.keys.to(dtype), prototypes]),
            weights,
            not_self,
            self.temperature,
            row_normalize=False,
            gradient_regularization=self.gradient_regularization,
            anchor_weights=anchor_weights,
            normalizer="weights",
            across_processes=batch.across_processes,
        )


def _item_self_mask(sample_self_mask: torch.Tensor, num_prototypes: int) -> torch.Tensor:
    """Self mask over items = samples then prototypes: ``[[S, 0], [0, I]]``."""
    anchors, keys = sample_self_mask.shape
    mask = torch.zeros(
        anchors + num_prototypes, keys + num_prototypes, dtype=torch.bool, device=sample_self_mask.device
    )
    mask[:anchors, :keys] = sample_self_mask
    mask[anchors:, keys:] = torch.eye(num_prototypes, dtype=torch.bool, device=sample_self_mask.device)
    return mask
