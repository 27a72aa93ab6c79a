r"""Ranked contrastive loss with user-defined class rankings (Balasubramanian et al., 2022; RINCE)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from hiercon.errors import LossInputError
from hiercon.losses import distributed
from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.core import (
    PairBatch,
    anchor_losses,
    build_pair_batch,
    check_temperature,
    reduce_anchors,
    similarity_logits,
)
from hiercon.losses.hierarchy_masks import check_similarity_matrix, rank_rows
from hiercon.losses.labels import check_class_ids, check_multi_hot
from hiercon.losses.momentum import MomentumQueue
from hiercon.taxonomy.label_space import LabelSpace

if TYPE_CHECKING:
    from hiercon.taxonomy import LabelTaxonomy

RankedReduction = Literal["sum_in_log", "per_positive"]
RankReduction = Literal["sum", "mean"]

_REDUCTIONS = {"sum_in_log": "in", "per_positive": "per_positive"}
_RANK_REDUCTIONS = ("sum", "mean")

RANKED_CITATION = """@article{balasubramanian2022contrastive,
  title   = {Contrastive Learning for {OOD} in Object detection},
  author  = {Balasubramanian, Rishab and Dey, Rupashree and Rathore, Kunal},
  journal = {arXiv preprint arXiv:2208.06083},
  year    = {2022}
}"""


class RankedContrastiveLoss(ContrastiveLoss):
    r"""Ranked InfoNCE with a class-similarity ranking (Balasubramanian, Dey, Rathore, arXiv 2208.06083,
    after RINCE, Hoffmann et al. AAAI 2022).

    A class-to-class similarity :math:`S \in [0, 1]^{C \times C}` (ones on the diagonal; with
    ``taxonomy=`` the taxonomy's ``similarity_matrix`` restricted to its leaves, or with a
    :class:`~hiercon.taxonomy.LabelSpace` restricted to its columns) ranks the keys
    of each anchor :math:`q`: :math:`\mathrm{rank}(q, k)` is the dense rank of
    :math:`-S[y_q, y_k]` among the similarities of row :math:`y_q` above
    ``similarity_threshold`` (1 = the anchor's own class; keys at or below the threshold, or past
    ``max_ranks``, are negatives :math:`N`). With ``merge_equal_similarity=False`` every class
    is its own rank (ties by class id). The anchor's other views are rank 1. Rank :math:`i` has
    temperature :math:`\tau_i = \tau_{min} + (1 - s_i)(\tau_{max} - \tau_{min})`, :math:`s_i`
    its similarity, and loss

    .. math::

        \ell_i(q) = -\log \frac{\sum_{p \in P_i} e^{q \cdot p / \tau_i}}
            {\sum_{p \in \cup_{j \ge i} P_j} e^{q \cdot p / \tau_i} + \sum_{n \in N} e^{q \cdot n / \tau_i}}

    (``reduction="sum_in_log"``, the paper's Eq. 2: higher ranks leave numerator and
    denominator). ``reduction="per_positive"`` is the code's ``sum_out_log``: each positive
    against itself and the lower ranks and negatives, averaged over the anchor's positives.
    Each rank is averaged over the anchors that have a positive of that rank; the ranks are
    summed (``rank_reduction="sum"``, the paper) or averaged over the number of ranks
    (``"mean"``, the code). The code's silent dropping of probabilities below 1e-7 is not
    reproduced.

    ``labels``: class ids ``[B]`` (a negative id: no class; such an item is a negative of every
    other anchor and has only its own views as positives) or multi-hot ``[B, C]``, where a pair's
    similarity is the largest over their label pairs, :math:`\max_{c \in y_q, c' \in y_k} S[c, c']`,
    and the anchor's ranks come from the row :math:`\max_{c \in y_q} S[c, :]`. With
    ``queue_size > 0`` a :class:`~hiercon.losses.momentum.MomentumQueue` of past keys and their
    labels adds keys (filled with the batch's keys after each training step).
    """

    citation: ClassVar[str] = RANKED_CITATION
    label_kind: ClassVar[str] = "class_ids"

    def __init__(
        self,
        similarity: torch.Tensor | None = None,
        taxonomy: LabelTaxonomy | LabelSpace | None = None,
        tau_min: float = 0.1,
        tau_max: float = 0.6,
        max_ranks: int | None = None,
        similarity_threshold: float = 0.0,
        reduction: RankedReduction = "sum_in_log",
        rank_reduction: RankReduction = "sum",
        merge_equal_similarity: bool = True,
        queue_size: int = 0,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(tau_min, gather_across_processes)
        check_temperature(tau_max, "tau_max")
        if tau_max < tau_min:
            raise LossInputError(f"tau_max ({tau_max}) must not be below tau_min ({tau_min})")
        if reduction not in _REDUCTIONS:
            raise LossInputError(f"reduction must be one of {tuple(_REDUCTIONS)}, got {reduction!r}")
        if rank_reduction not in _RANK_REDUCTIONS:
            raise LossInputError(f"rank_reduction must be one of {_RANK_REDUCTIONS}, got {rank_reduction!r}")
        if max_ranks is not None and int(max_ranks) < 1:
            raise LossInputError(f"max_ranks must be at least 1 (the own class), got {max_ranks}")
        if not 0.0 <= similarity_threshold < 1.0:
            raise LossInputError(f"similarity_threshold must be in [0, 1), got {similarity_threshold}")
        self.label_space = LabelSpace.of(taxonomy, "leaves")
        self.taxonomy = self.label_space.taxonomy if self.label_space is not None else None
        self.register_buffer(
            "similarity", _class_similarity(similarity, self.label_space).float(), persistent=False
        )
        self.tau_min, self.tau_max = float(tau_min), float(tau_max)
        self.max_ranks = None if max_ranks is None else int(max_ranks)
        self.similarity_threshold = float(similarity_threshold)
        self.reduction = reduction
        self.rank_reduction = rank_reduction
        self.merge_equal_similarity = merge_equal_similarity
        self.num_ranks = int(self._rank(self.similarity)[0].max())
        self.queue = MomentumQueue(queue_size) if queue_size > 0 else None

    @property
    def num_classes(self) -> int:
        return self.similarity.shape[0]

    def rank_temperature(self, similarity: torch.Tensor) -> torch.Tensor:
        """:math:`\\tau(s) = \\tau_{min} + (1 - s)(\\tau_{max} - \\tau_{min})`."""
        return self.tau_min + (1.0 - similarity) * (self.tau_max - self.tau_min)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        multi_hot = self._multi_hot(labels, embeddings)
        batch = build_pair_batch(embeddings, multi_hot, gather=self.gather_across_processes)
        keys, key_labels, key_items = self._keys_with_queue(batch)
        anchor_ranks, rank_similarity = self._rank(self._anchor_rows(batch.anchor_labels))
        key_rank = _key_ranks(anchor_ranks, key_labels)
        not_self = batch.anchor_positions[:, None] != torch.arange(keys.shape[0], device=keys.device)[None, :]
        key_rank = torch.where(batch.anchor_items[:, None] == key_items[None, :], 1, key_rank)
        cosine = similarity_logits(batch.anchors, keys, 1.0)
        parts = [
            self._rank_loss(batch, cosine, key_rank, not_self, rank, rank_similarity)
            for rank in range(1, self._ranks_in_batch(anchor_ranks, batch) + 1)
        ]
        self._enqueue(batch)
        total = torch.stack(parts).sum() if parts else cosine.sum() * 0.0
        return total / self.num_ranks if self.rank_reduction == "mean" else total

    def _rank_loss(
        self,
        batch: PairBatch,
        cosine: torch.Tensor,
        key_rank: torch.Tensor,
        not_self: torch.Tensor,
        rank: int,
        rank_similarity: torch.Tensor,
    ) -> torch.Tensor:
        positive = (key_rank == rank) & not_self
        valid = not_self & ((key_rank >= rank) | (key_rank == 0))
        losses, counted = anchor_losses(
            cosine / self._anchor_temperatures(rank_similarity, rank).to(cosine)[:, None],
            positive,
            valid,
            reduction=_REDUCTIONS[self.reduction],
            row_normalize=self.reduction == "per_positive",
        )
        return reduce_anchors(losses, counted, across_processes=batch.across_processes)

    def _anchor_temperatures(self, rank_similarity: torch.Tensor, rank: int) -> torch.Tensor:
        """``[A]``: each anchor's temperature at ``rank``; rank 1 (own class and views) has similarity 1,
        and an anchor without that rank gets any value (it has no positive there)."""
        if rank == 1 or rank_similarity.shape[1] < rank:
            fill = 1.0 if rank == 1 else 0.0
            return self.rank_temperature(rank_similarity.new_full((rank_similarity.shape[0],), fill))
        return self.rank_temperature(rank_similarity[:, rank - 1])

    def _rank(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rank_rows(rows, self.similarity_threshold, self.max_ranks, self.merge_equal_similarity)

    def _ranks_in_batch(self, anchor_ranks: torch.Tensor, batch: PairBatch) -> int:
        """The deepest rank of any anchor (of any process), at least 1 (the own views)."""
        deepest = anchor_ranks.max().reshape(1) if anchor_ranks.numel() else anchor_ranks.new_zeros(1)
        if batch.across_processes:
            deepest = distributed.gather_no_grad(deepest)
        return max(1, int(deepest.max()))

    def _anchor_rows(self, anchor_labels: torch.Tensor) -> torch.Tensor:
        """``[A, C]``: :math:`\\max_{c \\in y_a} S[c, :]` (0 for an anchor without labels)."""
        similarity = self.similarity.to(anchor_labels.device)
        if bool((anchor_labels.sum(dim=1) <= 1).all()):
            return anchor_labels @ similarity
        rows = anchor_labels.new_zeros(anchor_labels.shape)
        for label in range(self.num_classes):
            has_label = anchor_labels[:, label : label + 1] > 0
            rows = torch.where(has_label, torch.maximum(rows, similarity[label][None, :]), rows)
        return rows

    def _multi_hot(self, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        batch = embeddings.shape[0] if isinstance(embeddings, torch.Tensor) else None
        if self.label_space is not None and not (isinstance(labels, torch.Tensor) and labels.dim() == 1):
            return self._label_space_multi_hot(labels, batch, embeddings)
        if isinstance(labels, torch.Tensor) and labels.dim() == 2:
            return check_multi_hot(labels, batch, self.num_classes)
        ids = check_class_ids(labels, batch)
        if bool((ids >= self.num_classes).any()):
            raise LossInputError(
                f"class id {int(ids.max())} is outside the similarity matrix's {self.num_classes} classes"
            )
        one_hot = torch.zeros(ids.shape[0], self.num_classes, device=ids.device)
        labelled = ids >= 0
        one_hot[labelled.nonzero().flatten(), ids[labelled]] = 1.0
        return one_hot

    def _label_space_multi_hot(
        self, labels: object, batch: int | None, embeddings: torch.Tensor
    ) -> torch.Tensor:
        """Any label format of the label space, reduced to each item's most specific labels (in the
        ``"nodes"`` space closed ancestors would otherwise make every pair under one root rank 1)."""
        space = self.label_space
        multi_hot = space.most_specific(space.multi_hot(labels))
        return check_multi_hot(multi_hot.to(embeddings.device), batch, self.num_classes)

    def _keys_with_queue(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys, their labels and their items: the batch's, then the queue's (no item: -1)."""
        if self.queue is None or len(self.queue) == 0:
            return batch.keys, batch.key_labels, batch.key_items
        queued, queued_labels = self.queue.contents()
        keys = torch.cat([batch.keys, queued.to(batch.keys)])
        labels = torch.cat([batch.key_labels, queued_labels.to(batch.key_labels)])
        items = torch.cat([batch.key_items, batch.key_items.new_full((queued.shape[0],), -1)])
        return keys, labels, items

    def _enqueue(self, batch: PairBatch) -> None:
        if self.queue is not None and self.training:
            self.queue.enqueue(batch.keys, batch.key_labels, gather=False)


def _key_ranks(anchor_ranks: torch.Tensor, key_labels: torch.Tensor) -> torch.Tensor:
    """``[A, N]``: the best (smallest) rank among the key's classes for each anchor, 0 if none."""
    key_rank = torch.zeros(
        anchor_ranks.shape[0], key_labels.shape[0], dtype=torch.long, device=key_labels.device
    )
    deepest = int(anchor_ranks.max()) if anchor_ranks.numel() else 0
    for rank in range(deepest, 0, -1):
        has_rank = ((anchor_ranks == rank).to(key_labels.dtype) @ key_labels.T) > 0
        key_rank = torch.where(has_rank, rank, key_rank)
    return key_rank


def _class_similarity(similarity: torch.Tensor | None, label_space: LabelSpace | None) -> torch.Tensor:
    if (similarity is None) == (label_space is None):
        raise LossInputError("give exactly one of similarity= (a [C, C] matrix) or taxonomy=")
    if label_space is not None:
        similarity = label_space.similarity()
    return check_similarity_matrix(similarity)
