"""Stage-2 (classification) objectives over multi-hot targets: binary cross-entropy, the asymmetric
loss (ASL) and a hierarchy-consistency penalty, combined by :func:`build_objective`.

Every classification loss here is a mean over the ``batch x labels`` items of the batch, so that a
trainer that divides the per-batch loss by the number of gradient-accumulation steps gets the same
gradient as one large batch of the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hiercon.errors import ConfigError, LossInputError

if TYPE_CHECKING:
    from hiercon.taxonomy import LabelTaxonomy


def check_multilabel_inputs(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Refuse logits and multi-hot targets that do not fit each other."""
    if logits.dim() != 2:
        raise LossInputError(f"logits must be [batch, num_labels], got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape:
        raise LossInputError(
            f"labels of shape {tuple(targets.shape)} do not fit logits of shape {tuple(logits.shape)}: "
            f"each row needs one multi-hot value per label ({logits.shape[-1]})"
        )
    if not torch.is_floating_point(targets):
        raise LossInputError(f"labels must be float multi-hot values, got dtype {targets.dtype}")
    if targets.numel() and (targets.min() < 0 or targets.max() > 1):
        raise LossInputError("labels must lie in [0, 1] (multi-hot targets)")


class MultiLabelLoss(nn.Module):
    """A per-label binary loss ``loss(logits [B, C], targets [B, C]) -> scalar`` (mean over items)."""

    name: ClassVar[str] = ""
    citation: ClassVar[str] = ""

    def config(self) -> dict[str, object]:
        """Hyperparameters worth recording in a model card (plain JSON values)."""
        return {
            key: value
            for key, value in vars(self).items()
            if not key.startswith("_") and key != "training" and isinstance(value, (int, float, str, bool))
        }

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        check_multilabel_inputs(logits, targets)
        return self.item_losses(logits.float(), targets.float()).mean()

    def item_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of every (example, label) item, shape ``[B, C]``."""
        raise NotImplementedError


class BinaryCrossEntropy(MultiLabelLoss):
    """Binary cross-entropy on sigmoid outputs, averaged over items.

    ``L = -mean_{i,c} [ y_ic log sigmoid(z_ic) + (1 - y_ic) log(1 - sigmoid(z_ic)) ]``
    """

    name = "bce"

    def item_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")


class AsymmetricLoss(MultiLabelLoss):
    """Asymmetric loss (ASL) of Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021.

    With ``p = sigmoid(z)`` and the shifted probability ``p_m = max(p - clip, 0)``:

    ``L = -mean_{i,c} [ y (1 - p)^gamma_pos log(p) + (1 - y) p_m^gamma_neg log(1 - p_m) ]``

    ``gamma_neg > gamma_pos`` down-weights the many easy negatives; ``clip`` discards negatives whose
    probability is already below ``clip``. The paper sums over labels; the mean used here only rescales
    the loss (fold the factor into the learning rate) and keeps gradient accumulation exact.
    """

    name = "asl"
    citation = """@inproceedings{ridnik2021asymmetric,
  title = {Asymmetric Loss for Multi-Label Classification},
  author = {Ridnik, Tal and Ben-Baruch, Emanuel and Zamir, Nadav and Noy, Asaf and Friedman, Itamar
            and Protter, Matan and Zelnik-Manor, Lihi},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages = {82--91},
  year = {2021}
}"""

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05, eps: float = 1e-8):
        super().__init__()
        if gamma_neg < 0 or gamma_pos < 0:
            raise LossInputError(f"ASL focusing parameters must be >= 0, got {gamma_neg=}, {gamma_pos=}")
        if not 0 <= clip < 1:
            raise LossInputError(f"ASL clip (probability margin) must lie in [0, 1), got {clip}")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)
        self.eps = float(eps)

    def item_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(logits)
        log_p = F.logsigmoid(logits)
        if self.clip > 0:
            one_minus_shifted = (1 - probs + self.clip).clamp(max=1)
            log_one_minus_shifted = one_minus_shifted.clamp(min=self.eps).log()
        else:
            one_minus_shifted = 1 - probs
            log_one_minus_shifted = F.logsigmoid(-logits)
        positive = (1 - probs).pow(self.gamma_pos) * log_p
        negative = (1 - one_minus_shifted).pow(self.gamma_neg) * log_one_minus_shifted
        return -(targets * positive + (1 - targets) * negative)


LOSSES: dict[str, type[MultiLabelLoss]] = {"bce": BinaryCrossEntropy, "asl": AsymmetricLoss}


def taxonomy_edge_index(taxonomy: LabelTaxonomy, labels: Sequence[str]) -> torch.Tensor:
    """The taxonomy's parent -> child edges as positions in ``labels``: LongTensor ``[2, E]``.

    Edges with an end outside ``labels`` are skipped (a leaves-only label space has none left).
    """
    position = {label: i for i, label in enumerate(labels)}
    pairs = [
        (position[parent], position[child])
        for child in labels
        for parent in taxonomy.parents(child)
        if parent in position
    ]
    if not pairs:
        return torch.empty(2, 0, dtype=torch.long)
    return torch.tensor(pairs, dtype=torch.long).t().contiguous()


class HierarchyConsistencyPenalty(nn.Module):
    """Hinge penalty on children scored above their parents, over the taxonomy edges ``(parent, child)``:

    ``P = mean_{i, (p, c) in E} relu( sigmoid(z_ic) - sigmoid(z_ip) )``

    It is zero exactly when every example's scores respect the hierarchy (a child's probability never
    exceeds its parent's), the property that makes thresholded predictions closed under ancestors.
    """

    def __init__(self, edge_index: torch.Tensor) -> None:
        super().__init__()
        edge_index = torch.as_tensor(edge_index, dtype=torch.long)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise LossInputError(f"edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}")
        self.register_buffer("edge_index", edge_index, persistent=False)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if self.num_edges == 0:
            return logits.new_zeros((), dtype=torch.float32)
        if int(self.edge_index.max()) >= logits.shape[-1]:
            raise LossInputError(
                f"the hierarchy has a label id {int(self.edge_index.max())} beyond the {logits.shape[-1]} logits"
            )
        probs = torch.sigmoid(logits.float())
        parents, children = self.edge_index.to(logits.device)
        return F.relu(probs[:, children] - probs[:, parents]).mean()


class ClassificationObjective(nn.Module):
    """A classification loss plus an optional weighted hierarchy-consistency penalty.

    ``forward(logits, targets)`` returns the named parts, e.g. ``{"bce": ..., "consistency": ...}``
    (the penalty already multiplied by its weight); the training loss is their sum.
    """

    def __init__(
        self,
        loss: MultiLabelLoss,
        consistency: HierarchyConsistencyPenalty | None = None,
        consistency_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if consistency_weight < 0:
            raise ConfigError(f"consistency_weight must be >= 0, got {consistency_weight}")
        if consistency_weight > 0 and (consistency is None or consistency.num_edges == 0):
            raise ConfigError(
                "consistency_weight > 0 needs a taxonomy with parent-child edges inside the label space "
                "(a leaves-only or flat label space has none)"
            )
        self.loss = loss
        self.consistency = consistency if consistency_weight > 0 else None
        self.consistency_weight = float(consistency_weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = {self.loss.name or "loss": self.loss(logits, targets)}
        if self.consistency is not None:
            parts["consistency"] = self.consistency_weight * self.consistency(logits)
        return parts

    def describe(self) -> dict[str, object]:
        """Name, hyperparameters and citation of the objective (for configs and model cards)."""
        return {
            "loss": self.loss.name,
            "loss_config": self.loss.config(),
            "consistency_weight": self.consistency_weight,
            "citation": self.loss.citation,
        }


def build_objective(
    loss: str | MultiLabelLoss = "bce",
    loss_options: dict[str, float] | None = None,
    consistency_weight: float = 0.0,
    edge_index: torch.Tensor | None = None,
) -> ClassificationObjective:
    """A :class:`ClassificationObjective` from a loss name (``"bce"``, ``"asl"``) or instance."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ConfigError(f"unknown stage-2 loss {loss!r}; choose one of {sorted(LOSSES)}")
        try:
            loss = LOSSES[loss](**(loss_options or {}))
        except TypeError as error:
            raise ConfigError(f"bad options {loss_options} for loss {loss!r}: {error}") from None
    elif not isinstance(loss, MultiLabelLoss):
        raise ConfigError(f"loss must be 'bce', 'asl' or a MultiLabelLoss, got {type(loss).__name__}")
    elif loss_options:
        raise ConfigError("loss_options only apply when the loss is given by name")
    penalty = HierarchyConsistencyPenalty(edge_index) if edge_index is not None else None
    return ClassificationObjective(loss, penalty, consistency_weight)
