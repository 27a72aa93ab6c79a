r"""Supervised contrastive loss (SupCon) and its unsupervised special case SimCLR / NT-Xent."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from hiercon.errors import LossInputError
from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.core import PairBatch, build_pair_batch, check_temperature, contrastive_loss
from hiercon.losses.labels import check_class_ids, check_multi_hot, is_multi_hot, label_overlap

Variant = Literal["out", "in"]
PositiveRule = Literal["all", "any"]

_VARIANTS = ("out", "in")
_POSITIVE_RULES = ("all", "any")

SUPCON_CITATION = """@inproceedings{khosla2020supervised,
  title     = {Supervised Contrastive Learning},
  author    = {Khosla, Prannay and Teterwak, Piotr and Wang, Chen and Sarna, Aaron and Tian, Yonglong
               and Isola, Phillip and Maschinot, Aaron and Liu, Ce and Krishnan, Dilip},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {33},
  pages     = {18661--18673},
  year      = {2020}
}"""


def supcon_positives(
    batch: PairBatch, labels: torch.Tensor | None, positives: PositiveRule = "all"
) -> torch.Tensor:
    """``[A, N]`` bool: key ``k`` is a positive of anchor ``a`` (never the anchor itself).

    - no labels: the other views of the anchor's item (SimCLR);
    - class ids ``[B]``: same class (items with a negative id have no positive);
    - multi-hot ``[B, C]``: identical, non-empty label sets (``"all"``) or at least one shared
      label (``"any"``).
    """
    not_self = ~batch.self_mask
    if labels is None:
        return batch.same_item & not_self
    anchor_labels, key_labels = batch.anchor_labels, batch.key_labels
    if not is_multi_hot(labels):
        same_class = anchor_labels[:, None] == key_labels[None, :]
        return same_class & (anchor_labels >= 0)[:, None] & not_self
    inter, union = label_overlap(anchor_labels, key_labels)
    if positives == "all":
        return (inter == union) & (union > 0) & not_self
    return (inter > 0) & not_self


class SupConLoss(ContrastiveLoss):
    r"""Supervised contrastive loss of Khosla et al. (NeurIPS 2020).

    With views flattened into the anchor set :math:`A`, :math:`l_{ak} = z_a \cdot z_k / \tau` on
    L2-normalised embeddings and :math:`P(a)` the positives of anchor :math:`a`,

    .. math::

        L_{out} = \frac{1}{|A|} \sum_{a \in A} \frac{-1}{|P(a)|} \sum_{p \in P(a)}
            \log \frac{e^{l_{ap}}}{\sum_{k \ne a} e^{l_{ak}}}

        L_{in} = \frac{1}{|A|} \sum_{a \in A} -\log \Big( \frac{1}{|P(a)|} \sum_{p \in P(a)}
            \frac{e^{l_{ap}}}{\sum_{k \ne a} e^{l_{ak}}} \Big)

    Positives (see :func:`supcon_positives`): same class for class ids ``[B]`` (the item's other
    views included); for multi-hot ``[B, C]`` labels, identical label sets (``positives="all"``,
    SupCon-ALL) or at least one shared label (``positives="any"``, SupCon-ANY); with
    ``labels=None`` the item's other views only, which is SimCLR's NT-Xent (needs two views or
    more). The anchor itself is never in its denominator. :math:`|A|` counts the anchors that
    have a positive; the others (e.g. unlabelled items, marked by a negative class id or an
    empty label row) add nothing but stay negatives of the other anchors.

    ``base_temperature`` multiplies the loss by :math:`\tau / \tau_{base}` like the reference
    implementation (which fixes 0.07); ``None`` leaves the loss unscaled.
    """

    citation: ClassVar[str] = SUPCON_CITATION
    label_kind: ClassVar[str] = "class_ids"

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float | None = None,
        variant: Variant = "out",
        positives: PositiveRule = "all",
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(temperature, gather_across_processes)
        if base_temperature is not None:
            check_temperature(base_temperature, "base_temperature")
        if variant not in _VARIANTS:
            raise LossInputError(f"variant must be one of {_VARIANTS}, got {variant!r}")
        if positives not in _POSITIVE_RULES:
            raise LossInputError(f"positives must be one of {_POSITIVE_RULES}, got {positives!r}")
        self.base_temperature = base_temperature
        self.variant = variant
        self.positives = positives

    @property
    def scale(self) -> float:
        """:math:`\\tau / \\tau_{base}`, or 1 without a base temperature."""
        return 1.0 if self.base_temperature is None else self.temperature / self.base_temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = _check_supcon_labels(embeddings, labels)
        batch = build_pair_batch(embeddings, labels, gather=self.gather_across_processes)
        if labels is None and batch.num_views < 2:
            raise LossInputError(
                "labels=None (SimCLR) needs at least two views per item: embeddings of shape "
                "[batch, views >= 2, dim]"
            )
        positive = supcon_positives(batch, labels, self.positives)
        return contrastive_loss(
            batch.anchors,
            batch.keys,
            positive,
            ~batch.self_mask,
            self.temperature,
            reduction=self.variant,
            scale=self.scale,
            across_processes=batch.across_processes,
        )


def _check_supcon_labels(embeddings: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    if labels is None:
        return None
    batch = embeddings.shape[0] if isinstance(embeddings, torch.Tensor) else None
    if isinstance(labels, torch.Tensor) and labels.dim() == 2:
        return check_multi_hot(labels, batch)
    return check_class_ids(labels, batch)
