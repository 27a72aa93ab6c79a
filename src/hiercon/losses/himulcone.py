r"""Hierarchical multi-label contrastive loss (HiMulCon, HiConE, HiMulConE) of Zhang et al. (CVPR 2022)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from hiercon.errors import LossInputError
from hiercon.losses import distributed
from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.core import (
    PairBatch,
    build_pair_batch,
    check_temperature,
    masked_log_softmax,
    reduce_anchors,
    similarity_logits,
)
from hiercon.losses.hierarchy_masks import first_of_group, row_group_ids, shared_prefix_depth
from hiercon.taxonomy.label_space import LabelSpace

if TYPE_CHECKING:
    from hiercon.taxonomy import LabelTaxonomy

Mode = Literal["hmce", "hmc", "hce"]
HCEReduction = Literal["pair", "scalar"]
ConstrainedPairs = Literal["all", "farther"]
HCEFloor = Literal["level", "pair"]
LevelNormalizer = Literal["levels", "columns"]

_MODES = ("hmce", "hmc", "hce")
_HCE_REDUCTIONS = ("pair", "scalar")
_CONSTRAINED_PAIRS = ("all", "farther")
_HCE_FLOORS = ("level", "pair")
_LEVEL_NORMALIZERS = ("levels", "columns")

HIMULCONE_CITATION = """@inproceedings{zhang2022use,
  title     = {Use All The Labels: A Hierarchical Multi-Label Contrastive Learning Framework},
  author    = {Zhang, Shu and Xu, Ran and Xiong, Caiming and Ramaiah, Chetan},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {16660--16669},
  year      = {2022}
}"""


def exp_inverse_level(level: int) -> float:
    """:math:`\\lambda_l = e^{1/l}` (the reference training script's ``layer_penalty=torch.exp``)."""
    return math.exp(1.0 / level)


def pow2_inverse_level(level: int) -> float:
    """:math:`\\lambda_l = 2^{1/l}` (the reference loss class's default)."""
    return 2.0 ** (1.0 / level)


class HiMulConELoss(ContrastiveLoss):
    r"""Hierarchical multi-label contrastive loss of Zhang et al., "Use All The Labels" (CVPR 2022).

    **Levels** (HMLC numbering). Label paths :math:`y_i = (y_i^1, \dots, y_i^K)` run coarse to
    fine; level :math:`l = 1 .. K-1` (1 = finest) makes two items positive when they share the
    first :math:`K - l` columns. The last column is never a level of its own (in the reference
    data it is the image id): instance identity enters through the item's other views, which are
    positive at every level. With a taxonomy, each taxonomy depth is a level (the leaves are
    level 1, the roots level ``num_levels``), as if an instance column followed the leaf.

    **Pair term** over the anchor set :math:`A` (all views),
    :math:`\ell(i, p) = -\log \frac{e^{f_i \cdot f_p/\tau}}{\sum_{a \in A \setminus \{i\}} e^{f_i \cdot f_a/\tau}}`.

    **HiMulCon** (``mode="hmc"``):

    .. math:: L = \frac{1}{n} \sum_{l} \lambda_l \frac{1}{|I_l|} \sum_{i \in I_l}
        \frac{1}{|P_l(i)|} \sum_{p \in P_l(i)} \ell(i, p)

    with :math:`\lambda_l` = ``level_penalty(l)`` (default :math:`e^{1/l}`, the reference
    training script; :func:`pow2_inverse_level` is the reference class default), :math:`I_l` the
    anchors with a positive at level :math:`l`, and :math:`n` the number of levels
    (``normalizer="levels"``, the paper) or of label columns :math:`K` (``"columns"``, the code).

    **HiConE** (``mode="hce"``) replaces :math:`\ell` at level :math:`l` by the constrained term
    (``hce_reduction="pair"``, the paper's per-pair form with the erratum: the max runs over the
    finer levels' losses)

    .. math:: \ell_l(i, p) = \max\big(\ell(i, p),\ m_{l-1}(i)\big)
        \quad \text{for } p \in P_l(i) \setminus P_{l-1}(i), \qquad
        m_l(i) = \max\big(m_{l-1}(i),\ S_l(i)\big), \quad m_0 = -\infty

    with :math:`S_l(i) = \frac{1}{|P_l(i)|} \sum_{p \in P_l(i)} \ell_l(i, p)` the anchor's
    level-:math:`l` loss: a pair that is farther apart in the label space (its closest shared
    level is :math:`l`) never costs less than the anchor's largest loss at the finer levels (on
    a tie the gradient goes to the finer level). The level-:math:`l` positives that are also
    positives at a finer level (the item's other views among them) keep their own term; the
    reference code's de-duplication likewise leaves them out of the coarser levels.

    Two other readings are options. ``hce_floor="pair"`` takes :math:`m_l(i)` over the finer
    levels' pair terms (:math:`\max_{p \in P_l(i)} \ell_l(i, p)`, the anchor's hardest finer
    positive), and ``constrained_pairs="all"`` also raises the positives shared with a finer
    level. With many positives per level (multi-label or coarse levels, e.g. a third of a
    GoEmotions batch shares a sentiment), the hardest-pair floor puts most coarse terms on the
    floor, so their gradient pulls each anchor towards its hardest finer positive, which lies
    across the batch: the batch contracts until every logit is equal, the loss stays at
    :math:`\log(N-1)` times the mean :math:`\lambda`, and the embeddings stay collapsed. Both
    readings together collapsed a MiniLM text encoder and a ViT; the hardest-pair floor alone
    collapsed the ViT (``benchmarks/results/himulcone_collapse.md``).
    ``hce_reduction="scalar"`` is the reference code's batch-level running max
    :math:`R_l = \max(R_{l-1}, S_l)` of the unweighted level losses :math:`S_l` (the larger
    one gets the gradient; on a tie the finer). **HiMulConE** (``mode="hmce"``) weights the
    constrained levels by :math:`\lambda_l`.

    ``dedup_between_levels`` reproduces the reference code's batch cut: level :math:`l > 1` is
    computed on one representative item (the first in the batch, both views kept) per distinct
    level-:math:`(l-1)` prefix. ``base_temperature`` multiplies by :math:`\tau / \tau_{base}`
    (the code fixes 0.07).

    **Labels.** Without a taxonomy: integer paths ``[B, K]``; with ``instance_column=False`` the
    paths hold label levels only (e.g. taxonomy paths) and every column is a level, as if an
    instance column followed. With a taxonomy (or a :class:`~hiercon.taxonomy.LabelSpace`): any
    label format its label space reads (:meth:`~hiercon.taxonomy.LabelSpace.multi_hot`): multi-hot
    ``[B, num_labels]`` over all its nodes or ``[B, num_leaves]`` over its leaves (told apart by the
    width; ancestors are switched on), column ids ``[B]``, or per item a list of label names or
    path strings. Level-:math:`l`
    positives then share any node of that depth (a shallow leaf also stands for itself at the
    deeper levels); for single-path data this equals prefix equality. The loss with
    ``return_parts=True`` is a dict ``{"level_1": .., ...}`` whose sum is the loss.
    """

    citation: ClassVar[str] = HIMULCONE_CITATION
    label_kind: ClassVar[str] = "paths"

    def __init__(
        self,
        taxonomy: LabelTaxonomy | LabelSpace | None = None,
        mode: Mode = "hmce",
        level_penalty: Callable[[int], float] | Sequence[float] = exp_inverse_level,
        dedup_between_levels: bool = False,
        hce_reduction: HCEReduction = "pair",
        constrained_pairs: ConstrainedPairs = "farther",
        hce_floor: HCEFloor = "level",
        normalizer: LevelNormalizer = "levels",
        temperature: float = 0.1,
        base_temperature: float | None = None,
        return_parts: bool = False,
        instance_column: bool = True,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(temperature, gather_across_processes)
        _check_choice("mode", mode, _MODES)
        _check_choice("hce_reduction", hce_reduction, _HCE_REDUCTIONS)
        _check_choice("constrained_pairs", constrained_pairs, _CONSTRAINED_PAIRS)
        _check_choice("hce_floor", hce_floor, _HCE_FLOORS)
        _check_choice("normalizer", normalizer, _LEVEL_NORMALIZERS)
        if base_temperature is not None:
            check_temperature(base_temperature, "base_temperature")
        if not callable(level_penalty) and not isinstance(level_penalty, Sequence):
            raise LossInputError("level_penalty must be a callable level -> weight or a sequence of weights")
        self.label_space = LabelSpace.of(taxonomy, "nodes")
        self.taxonomy = self.label_space.taxonomy if self.label_space is not None else None
        self.mode = mode
        self.level_penalty = level_penalty
        self.dedup_between_levels = dedup_between_levels
        self.hce_reduction = hce_reduction
        self.constrained_pairs = constrained_pairs
        self.hce_floor = hce_floor
        self.normalizer = normalizer
        self.base_temperature = base_temperature
        self.return_parts = return_parts
        self.instance_column = instance_column
        self._levels = _TaxonomyLevels(self.label_space) if self.label_space is not None else None

    @property
    def scale(self) -> float:
        return 1.0 if self.base_temperature is None else self.temperature / self.base_temperature

    def config(self) -> dict[str, object]:
        """Hyperparameters for model cards, with the level penalty by name (or its weights)."""
        penalty = self.level_penalty
        name = (
            getattr(penalty, "__name__", repr(penalty)) if callable(penalty) else [float(w) for w in penalty]
        )
        return {**super().config(), "level_penalty": name}

    def level_weight(self, level: int) -> float:
        """:math:`\\lambda_l` for ``mode`` ``"hmc"``/``"hmce"`` (1 for ``"hce"``)."""
        if self.mode == "hce":
            return 1.0
        if callable(self.level_penalty):
            return float(self.level_penalty(level))
        if level > len(self.level_penalty):
            raise LossInputError(
                f"level_penalty has {len(self.level_penalty)} weights but level {level} exists"
            )
        return float(self.level_penalty[level - 1])

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        structure = self._levels or _PathLevels(labels, self.instance_column)
        encoded = structure.encode(labels)
        batch = build_pair_batch(embeddings, encoded, gather=self.gather_across_processes)
        logits = similarity_logits(batch.anchors, batch.keys, self.temperature)
        level_losses = self._level_losses(batch, logits, structure)
        parts = self._combine(level_losses, batch.across_processes)
        divisor = structure.num_levels if self.normalizer == "levels" else structure.num_columns
        parts = {name: part * (self.scale / divisor) for name, part in parts.items()}
        return parts if self.return_parts else self.total(parts)

    def _level_losses(self, batch: PairBatch, logits: torch.Tensor, structure: _Levels) -> list[torch.Tensor]:
        """The level losses :math:`S_l` (pair-constrained for per-pair HCE), finest first."""
        not_self = ~batch.self_mask
        anchor_present = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
        key_present = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
        running_max = torch.full((logits.shape[0],), float("-inf"), dtype=logits.dtype, device=logits.device)
        constrain_pairs = self.mode != "hmc" and self.hce_reduction == "pair"
        finer_positive = torch.zeros_like(not_self)
        losses = []
        for level in range(1, structure.num_levels + 1):
            if self.dedup_between_levels and level > 1:
                key_present = structure.representatives(batch.key_labels, batch.key_items, level - 1)
                anchor_present = key_present[batch.anchor_positions]
            valid = not_self & anchor_present[:, None] & key_present[None, :]
            level_positive = (
                structure.positives(batch.anchor_labels, batch.key_labels, level) | batch.same_item
            )
            positive = level_positive & valid
            pair_loss = -masked_log_softmax(logits, valid)
            if constrain_pairs:
                raised = ~(pair_loss > running_max[:, None])
                if self.constrained_pairs == "farther":
                    raised = raised & ~finer_positive
                pair_loss = torch.where(raised, running_max[:, None], pair_loss)
            finer_positive = level_positive
            counts = positive.sum(dim=1)
            anchor_loss = torch.where(positive, pair_loss, 0.0).sum(dim=1) / counts.clamp_min(1)
            if constrain_pairs:
                running_max = self._raise_floor(running_max, pair_loss, anchor_loss, positive)
            losses.append(reduce_anchors(anchor_loss, counts > 0, across_processes=batch.across_processes))
        return losses

    def _raise_floor(
        self, floor: torch.Tensor, pair_loss: torch.Tensor, anchor_loss: torch.Tensor, positive: torch.Tensor
    ) -> torch.Tensor:
        """The anchors' floor after a level: the larger of the old floor and the level's anchor loss
        (``hce_floor="level"``) or its largest pair term (``"pair"``); on a tie, the old floor."""
        if self.hce_floor == "pair":
            return _running_max(floor, pair_loss, positive)
        return torch.where(positive.any(dim=1) & (anchor_loss > floor), anchor_loss, floor)

    def _combine(self, level_losses: list[torch.Tensor], across_processes: bool) -> dict[str, torch.Tensor]:
        """Weight the levels, with the scalar running max for ``hce_reduction="scalar"``."""
        scalar_max = self.mode != "hmc" and self.hce_reduction == "scalar"
        parts: dict[str, torch.Tensor] = {}
        running: torch.Tensor | None = None
        for level, loss in enumerate(level_losses, start=1):
            if scalar_max and running is not None:
                take_new = _global_value(loss, across_processes) > _global_value(running, across_processes)
                loss = loss if take_new else running
            running = loss
            parts[f"level_{level}"] = self.level_weight(level) * loss
        return parts


def _running_max(running_max: torch.Tensor, pair_loss: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    r""":math:`m_l = \max(m_{l-1}, \max_{p \in P_l} \ell_l)`; the gradient goes to the first largest term."""
    masked = torch.where(positive, pair_loss, float("-inf"))
    level_max = pair_loss.gather(1, masked.argmax(dim=1, keepdim=True)).squeeze(1)
    return torch.where(positive.any(dim=1) & (level_max > running_max), level_max, running_max)


def _global_value(value: torch.Tensor, across_processes: bool) -> float:
    """A per-process loss share's global value (the mean over processes)."""
    if across_processes and distributed.is_distributed():
        return float(distributed.sum_across_processes(value.detach()) / distributed.world_size())
    return float(value.detach())


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise LossInputError(f"{name} must be one of {choices}, got {value!r}")


class _Levels(ABC):
    """How a label encoding defines the levels' positives and the de-duplication groups."""

    num_levels: int
    num_columns: int

    @abstractmethod
    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        """The per-item label tensor that is gathered across processes."""

    @abstractmethod
    def positives(self, anchor_labels: torch.Tensor, key_labels: torch.Tensor, level: int) -> torch.Tensor:
        """``[A, N]`` bool: anchor and key share their level-``level`` group."""

    @abstractmethod
    def prefix(self, labels: torch.Tensor, level: int) -> torch.Tensor:
        """``[N, *]``: rows that are equal exactly when the items share their level-``level`` prefix."""

    def representatives(self, labels: torch.Tensor, items: torch.Tensor, level: int) -> torch.Tensor:
        """``[N]`` bool: the row belongs to the first item of its level-``level`` prefix group."""
        return first_of_group(row_group_ids(self.prefix(labels, level)), items)


class _PathLevels(_Levels):
    """Integer label paths ``[B, K]``: level ``l`` shares the first ``K - l`` columns, where ``K``
    counts an instance column (the last given column, or an implicit one after the path)."""

    def __init__(self, labels: torch.Tensor, instance_column: bool) -> None:
        if not isinstance(labels, torch.Tensor) or labels.dim() != 2:
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise LossInputError(
                f"labels must be label paths of shape [batch, columns] (coarse to fine), got {shape}; "
                "pass taxonomy= to use multi-hot labels"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            raise LossInputError(f"label paths must hold integer ids, got dtype {labels.dtype}")
        self.num_columns = labels.shape[1] + (0 if instance_column else 1)
        if self.num_columns < 2:
            raise LossInputError(
                f"label paths need at least 2 columns when the last is an instance column (levels use all "
                f"but the last), got {labels.shape[1]}"
            )
        self.num_levels = self.num_columns - 1

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.long()

    def positives(self, anchor_labels: torch.Tensor, key_labels: torch.Tensor, level: int) -> torch.Tensor:
        return shared_prefix_depth(anchor_labels, key_labels) >= self.num_columns - level

    def prefix(self, labels: torch.Tensor, level: int) -> torch.Tensor:
        return labels[:, : self.num_columns - level]


class _TaxonomyLevels(_Levels):
    """Multi-hot labels over a taxonomy: level ``l`` shares a node of depth ``num_levels - l``.

    Labels are encoded as ``[B, num_levels, L]``: row ``d`` holds the item's nodes that sit at
    depth ``d`` (a leaf shallower than ``d`` stands for itself there, like ``leaf_paths``).
    """

    def __init__(self, label_space: LabelSpace) -> None:
        self.label_space = label_space
        self.num_levels = int(label_space.num_levels)
        self.num_columns = self.num_levels + 1
        self._occupancy = label_space.level_occupancy.float()

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        space = self.label_space
        nodes = space.to_nodes(space.multi_hot(labels))
        if isinstance(labels, torch.Tensor):
            nodes = nodes.to(labels.device)
        return nodes[:, None, :] * self._occupancy.to(nodes.device).T[None, :, :]

    def positives(self, anchor_labels: torch.Tensor, key_labels: torch.Tensor, level: int) -> torch.Tensor:
        depth = self.num_levels - level
        return (anchor_labels[:, depth].float() @ key_labels[:, depth].float().T) > 0

    def prefix(self, labels: torch.Tensor, level: int) -> torch.Tensor:
        return labels[:, : self.num_levels - level + 1].flatten(1)
