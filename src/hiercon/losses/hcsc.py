r"""Hierarchical Contrastive Selective Coding (HCSC) of Guo et al. (CVPR 2022)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch

from hiercon.errors import LossInputError
from hiercon.losses.base import ContrastiveLoss
from hiercon.losses.clustering import HierarchicalPrototypes, fit_hierarchical_prototypes
from hiercon.losses.core import PairBatch, anchor_losses, build_pair_batch, reduce_anchors, similarity_logits
from hiercon.losses.momentum import MomentumQueue

Selection = Literal["exclude", "zero_logit"]
LevelReduction = Literal["mean", "sum"]

_SELECTIONS = ("exclude", "zero_logit")
_LEVEL_REDUCTIONS = ("mean", "sum")

HCSC_CITATION = """@inproceedings{guo2022hcsc,
  title     = {{HCSC}: Hierarchical Contrastive Selective Coding},
  author    = {Guo, Yuanfan and Xu, Minghao and Li, Jiawen and Ni, Bingbing and Zhu, Xuanyu
               and Sun, Zhenbang and Xu, Yi},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {9706--9715},
  year      = {2022}
}"""


class HCSCLoss(ContrastiveLoss):
    r"""Hierarchical Contrastive Selective Coding of Guo et al. (CVPR 2022).

    Queries :math:`q_i` (view 0) and keys :math:`k_i` (view 1, or ``key_embeddings=`` from a
    :class:`~hiercon.losses.momentum.MomentumEncoder`: ``[B, d]``, or ``[B, V, d]`` whose view 1
    is used) are L2-normalised; hierarchical prototypes :math:`C^l` (finest level first) with
    concentrations :math:`\phi^l` and parent maps :math:`\pi_l` come from :meth:`fit_prototypes`
    or :meth:`set_prototypes`; ``labels`` are the items' prototype ids :math:`a_l(i)` from the
    last clustering, ``[B, L]``, or ``[B]`` at the finest level (the coarser ones follow through
    the parent maps).

    **Instance-wise selective coding** (ICSC), per level :math:`l`: a negative :math:`u_j` (the
    queue, plus the other items' keys with ``batch_negatives``) is kept with probability
    :math:`\rho^l_{ij} = 1 - \mathrm{softmax}_{c \in C^l}(u_j \cdot c / \phi_c)[a_l(i)]`
    (clipped to ``[0, 0.999]``), the chance that it lies outside the query's cluster, and

    .. math:: L^l_{ICSC}(i) = -\log \frac{e^{q_i \cdot k_i/\tau}}
        {e^{q_i \cdot k_i/\tau} + \sum_{j \text{ kept}} e^{q_i \cdot u_j/\tau}}

    **Prototypical selective coding** (PCSC), per level: the positive is :math:`c^+ = C^l_{a_l(i)}`;
    candidate negatives are the prototypes assigned to no item of the batch (of every process);
    below the top level each is kept with probability
    :math:`\rho_{ic} = 1 - \mathrm{softmax}_{c' \in C^{l+1}}(c \cdot c' / \phi^{l+1}_{c'})[\pi_l(a_l(i))]`
    (clipped to ``[1e-4, 0.999]``), at the top level all are kept, and

    .. math:: L^l_{PCSC}(i) = -\log \frac{e^{q_i \cdot c^+/\phi_{c^+}}}
        {e^{q_i \cdot c^+/\phi_{c^+}} + \sum_{c \text{ kept}} e^{q_i \cdot c/\phi_c}}

    The loss is ``{"instance": mean_i over the levels' ICSC, "prototype": mean_i over the
    levels' PCSC}``; levels are averaged (``"mean"``) or summed (``"sum"``; the reference code
    sums the instance levels and averages the prototype levels). Without prototypes (before the
    first clustering) only ``"instance"`` is returned: MoCo's InfoNCE with every negative.

    Options reproducing the reference code: ``selection="zero_logit"`` keeps unselected
    negatives with logit 0 (they still add :math:`e^0 = 1` to the partition function, with no
    gradient) instead of excluding them (``"exclude"``, the paper); ``last_prototype_never_negative``
    drops the highest prototype id from the candidate negatives (the code's ``range(max id)``).
    Draws use a generator seeded with ``seed`` (``None``: torch's global generator). After each
    training forward, the batch's keys (all processes' keys) are enqueued.
    """

    citation: ClassVar[str] = HCSC_CITATION
    label_kind: ClassVar[str] = "clusters"

    def __init__(
        self,
        temperature: float = 0.2,
        queue_size: int = 16384,
        batch_negatives: bool = False,
        selection: Selection = "exclude",
        instance_level_reduction: LevelReduction = "mean",
        prototype_level_reduction: LevelReduction = "mean",
        last_prototype_never_negative: bool = False,
        seed: int | None = None,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(temperature, gather_across_processes)
        if selection not in _SELECTIONS:
            raise LossInputError(f"selection must be one of {_SELECTIONS}, got {selection!r}")
        for name, value in (("instance", instance_level_reduction), ("prototype", prototype_level_reduction)):
            if value not in _LEVEL_REDUCTIONS:
                raise LossInputError(
                    f"{name}_level_reduction must be one of {_LEVEL_REDUCTIONS}, got {value!r}"
                )
        if queue_size <= 0 and not batch_negatives:
            raise LossInputError("HCSC needs negatives: give queue_size > 0 or batch_negatives=True")
        self.queue_size = int(queue_size)
        self.batch_negatives = batch_negatives
        self.selection = selection
        self.instance_level_reduction = instance_level_reduction
        self.prototype_level_reduction = prototype_level_reduction
        self.last_prototype_never_negative = last_prototype_never_negative
        self.seed = seed
        self.queue = MomentumQueue(queue_size) if queue_size > 0 else None
        self._prototypes: list[torch.Tensor] = []
        self._concentrations: list[torch.Tensor] = []
        self._parents: list[torch.Tensor] = []
        self._generators: dict[torch.device, torch.Generator] = {}

    @property
    def num_levels(self) -> int:
        return len(self._prototypes)

    def set_prototypes(
        self,
        centroids: Sequence[torch.Tensor],
        assignments: torch.Tensor | None = None,
        concentrations: Sequence[torch.Tensor] | None = None,
        parents: Sequence[torch.Tensor] | None = None,
    ) -> None:
        """Install prototypes ``[M_l, d]`` (normalised here), finest level first.

        ``assignments`` ``[n, L]`` (the dataset's prototype ids per level) give the parent maps
        ``[M_l]`` unless ``parents`` are given; a prototype no item is assigned to takes its
        nearest coarser prototype. ``concentrations`` ``[M_l]`` default to ``temperature`` for
        every prototype (:meth:`fit_prototypes` estimates them from the data).
        """
        centroids = [torch.nn.functional.normalize(torch.as_tensor(c).float(), dim=1) for c in centroids]
        if concentrations is None:
            concentrations = [torch.full((c.shape[0],), self.temperature) for c in centroids]
        concentrations = [torch.as_tensor(phi).float() for phi in concentrations]
        if parents is None:
            parents = _parent_maps(centroids, assignments)
        parents = [torch.as_tensor(p).long() for p in parents]
        _check_prototypes(centroids, concentrations, parents)
        self._prototypes, self._concentrations, self._parents = centroids, concentrations, parents

    def fit_prototypes(
        self, embeddings: torch.Tensor, n_clusters: Sequence[int], seed: int = 0
    ) -> HierarchicalPrototypes:
        """Hierarchical k-means on the dataset's embeddings (concentrations rescaled to mean
        ``temperature``); installs and returns the prototypes, whose ``assignments`` are the labels."""
        prototypes = fit_hierarchical_prototypes(embeddings, n_clusters, self.temperature, seed)
        self.set_prototypes(
            prototypes.centroids, prototypes.assignments, prototypes.concentrations, prototypes.parents
        )
        return prototypes

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        key_embeddings: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        pairs = _query_key_pairs(embeddings, key_embeddings)
        labels = self._check_labels(labels, pairs.shape[-1])
        batch = build_pair_batch(pairs, labels, gather=self.gather_across_processes)
        queries, own_key = batch.anchors[0::2], batch.anchor_items[0::2]
        batch_keys = batch.keys[1::2]
        key_labels = None if labels is None else batch.key_labels[1::2]
        query_labels = None if labels is None else batch.anchor_labels[0::2]
        negatives, in_batch = self._negatives(batch_keys, own_key)
        candidates = torch.cat([batch_keys, negatives.to(batch_keys)])
        logits = similarity_logits(queries, candidates, self.temperature)
        parts = {"instance": self._instance_loss(logits, candidates, in_batch, own_key, query_labels, batch)}
        if labels is not None:
            parts["prototype"] = self._prototype_loss(queries, query_labels, key_labels, batch)
        if self.queue is not None and self.training:
            self.queue.enqueue(batch_keys, gather=False)
        return parts

    def _negatives(
        self, batch_keys: torch.Tensor, own_key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The queue's keys and ``[A, N_batch]``: which batch keys are negatives of each query."""
        queued = self.queue.contents()[0] if self.queue is not None and len(self.queue) else batch_keys[:0]
        columns = torch.arange(batch_keys.shape[0], device=batch_keys.device)
        in_batch = (own_key[:, None] != columns[None, :]) & self.batch_negatives
        return queued, in_batch

    def _instance_loss(
        self,
        logits: torch.Tensor,
        candidates: torch.Tensor,
        in_batch: torch.Tensor,
        own_key: torch.Tensor,
        query_labels: torch.Tensor | None,
        batch: PairBatch,
    ) -> torch.Tensor:
        queued = candidates.shape[0] - in_batch.shape[1]
        negative = torch.cat([in_batch, in_batch.new_ones((in_batch.shape[0], queued))], dim=1)
        columns = torch.arange(candidates.shape[0], device=candidates.device)
        positive = own_key[:, None] == columns[None, :]
        if query_labels is None:
            return self._coded(logits, positive, negative, torch.ones_like(negative), batch)
        level_losses = []
        for level in range(self.num_levels):
            keep = self._keep_probability(candidates, query_labels[:, level], level).clamp(0.0, 0.999)
            selected = self._bernoulli(keep) > 0
            level_losses.append(self._coded(logits, positive, negative, selected, batch))
        return _reduce_levels(level_losses, self.instance_level_reduction)

    def _prototype_loss(
        self, queries: torch.Tensor, query_labels: torch.Tensor, key_labels: torch.Tensor, batch: PairBatch
    ) -> torch.Tensor:
        level_losses = []
        for level in range(self.num_levels):
            prototypes = self._prototypes[level].to(queries)
            logits = similarity_logits(queries, prototypes, self._concentrations[level].to(queries))
            columns = torch.arange(prototypes.shape[0], device=queries.device)
            positive = query_labels[:, level, None] == columns[None, :]
            used = torch.zeros(prototypes.shape[0], dtype=torch.bool, device=queries.device)
            used[key_labels[:, level]] = True
            candidate = ~used
            if self.last_prototype_never_negative:
                candidate[-1] = False
            negative = candidate[None, :].expand_as(positive) & ~positive
            if level + 1 < self.num_levels:
                parent = self._parents[level].to(queries.device)[query_labels[:, level]]
                keep = self._keep_probability(prototypes, parent, level + 1).clamp(1e-4, 0.999)
                selected = self._bernoulli(keep) > 0
            else:
                selected = torch.ones_like(negative)
            level_losses.append(self._coded(logits, positive, negative, selected, batch))
        return _reduce_levels(level_losses, self.prototype_level_reduction)

    def _keep_probability(self, points: torch.Tensor, cluster: torch.Tensor, level: int) -> torch.Tensor:
        """``[A, P]``: :math:`1 - \\mathrm{softmax}_c(p \\cdot c / \\phi_c)[\\text{cluster}_a]` for each point."""
        prototypes = self._prototypes[level].to(points)
        with torch.no_grad():
            logits = similarity_logits(points.detach(), prototypes, self._concentrations[level].to(points))
            membership = logits.softmax(dim=1)
        return 1.0 - membership[:, cluster].T

    def _coded(
        self,
        logits: torch.Tensor,
        positive: torch.Tensor,
        negative: torch.Tensor,
        selected: torch.Tensor,
        batch: PairBatch,
    ) -> torch.Tensor:
        """Cross-entropy of the positive against the selected negatives (or, with ``zero_logit``,
        against every negative, the unselected ones with logit 0)."""
        if self.selection == "exclude":
            valid = positive | (negative & selected)
        else:
            valid = positive | negative
            logits = torch.where(negative & ~selected, 0.0, logits)
        losses, counted = anchor_losses(logits, positive, valid)
        return reduce_anchors(losses, counted, across_processes=batch.across_processes)

    def _bernoulli(self, probabilities: torch.Tensor) -> torch.Tensor:
        if self.seed is None:
            return torch.bernoulli(probabilities)
        device = probabilities.device
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return torch.bernoulli(probabilities, generator=self._generators[device])

    def _compose_levels(self, finest: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` prototype ids from the finest level's ``[B]`` through the parent maps."""
        if finest.is_floating_point() or finest.dtype == torch.bool:
            raise LossInputError(f"prototype assignments must be integers, got dtype {finest.dtype}")
        count = self._prototypes[0].shape[0]
        if bool(((finest < 0) | (finest >= count)).any()):
            raise LossInputError(f"labels hold prototype ids outside 0..{count - 1} (the finest level)")
        columns = [finest.long()]
        for parent in self._parents:
            columns.append(parent.to(finest.device)[columns[-1]])
        return torch.stack(columns, dim=1)

    def _check_labels(self, labels: torch.Tensor | None, dim: int) -> torch.Tensor | None:
        if labels is None or not self._prototypes:
            return None
        if self._prototypes[0].shape[1] != dim:
            raise LossInputError(
                f"the prototypes have dim {self._prototypes[0].shape[1]} but the embeddings have dim {dim}"
            )
        if isinstance(labels, torch.Tensor) and labels.dim() == 1:
            labels = self._compose_levels(labels)
        if not isinstance(labels, torch.Tensor) or labels.dim() != 2 or labels.shape[1] != self.num_levels:
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise LossInputError(
                f"labels must be prototype assignments of shape [batch, {self.num_levels}] (one column per "
                f"level, finest first), got {shape}"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise LossInputError(f"prototype assignments must be integers, got dtype {labels.dtype}")
        for level, prototypes in enumerate(self._prototypes):
            column = labels[:, level]
            if bool(((column < 0) | (column >= prototypes.shape[0])).any()):
                raise LossInputError(
                    f"labels column {level} holds prototype ids outside 0..{prototypes.shape[0] - 1}"
                )
        return labels.long()


def _query_key_pairs(embeddings: torch.Tensor, key_embeddings: torch.Tensor | None) -> torch.Tensor:
    """``[B, 2, d]``: each item's query (view 0) and key (view 1, or ``key_embeddings``, without gradient)."""
    if not isinstance(embeddings, torch.Tensor) or not embeddings.is_floating_point():
        raise LossInputError("embeddings must be a floating-point torch.Tensor")
    if key_embeddings is None:
        if embeddings.dim() != 3 or embeddings.shape[1] < 2:
            raise LossInputError(
                f"embeddings must be [batch, 2, dim] (query and key views) unless key_embeddings= is "
                f"given, got {tuple(embeddings.shape)}"
            )
        return embeddings[:, :2]
    queries = embeddings[:, 0] if embeddings.dim() == 3 else embeddings
    keys = key_embeddings
    if keys.dim() == 3:
        keys = keys[:, 1] if keys.shape[1] > 1 else keys[:, 0]
    if keys.shape != queries.shape:
        raise LossInputError(
            f"key_embeddings must match the queries' shape {tuple(queries.shape)}, got {tuple(keys.shape)}"
        )
    return torch.stack([queries, keys.detach().to(queries.dtype)], dim=1)


def _parent_maps(centroids: list[torch.Tensor], assignments: torch.Tensor | None) -> list[torch.Tensor]:
    """Each prototype's parent one level up: from the items' assignments where the prototype has
    items, else the most similar coarser prototype."""
    parents = []
    for level in range(len(centroids) - 1):
        parent = (centroids[level] @ centroids[level + 1].T).argmax(dim=1)
        if assignments is not None:
            assignments = torch.as_tensor(assignments).long().cpu()
            parent[assignments[:, level]] = assignments[:, level + 1]
        parents.append(parent)
    return parents


def _reduce_levels(level_losses: list[torch.Tensor], reduction: LevelReduction) -> torch.Tensor:
    total = torch.stack(level_losses).sum()
    return total / len(level_losses) if reduction == "mean" else total


def _check_prototypes(
    centroids: list[torch.Tensor], concentrations: list[torch.Tensor], parents: list[torch.Tensor]
) -> None:
    if not centroids:
        raise LossInputError("set_prototypes needs at least one level of prototypes")
    if len(concentrations) != len(centroids) or len(parents) != len(centroids) - 1:
        raise LossInputError(
            f"{len(centroids)} levels of prototypes need as many concentrations (got {len(concentrations)}) "
            f"and {len(centroids) - 1} parent maps (got {len(parents)})"
        )
    for level, (protos, phi) in enumerate(zip(centroids, concentrations)):
        if protos.dim() != 2 or phi.shape != (protos.shape[0],):
            raise LossInputError(
                f"level {level}: prototypes must be [M, dim] with M concentrations, got "
                f"{tuple(protos.shape)} and {tuple(phi.shape)}"
            )
        if not bool(torch.isfinite(phi).all()) or bool((phi <= 0).any()):
            raise LossInputError(f"level {level}: concentrations must be positive and finite")
        if protos.shape[1] != centroids[0].shape[1]:
            raise LossInputError(
                f"level {level}: prototypes have dim {protos.shape[1]}, level 0 has {centroids[0].shape[1]}"
            )
    for level, parent in enumerate(parents):
        if parent.shape != (centroids[level].shape[0],):
            raise LossInputError(f"level {level}: the parent map must have one entry per prototype")
        if bool(((parent < 0) | (parent >= centroids[level + 1].shape[0])).any()):
            raise LossInputError(f"level {level}: parent ids must index level {level + 1}'s prototypes")
