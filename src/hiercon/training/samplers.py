"""Batch samplers for in-batch contrastive losses.

:class:`MultiLabelBatchSampler` generalises P-labels x K-examples sampling to multi-label data:
each batch picks ``P`` labels (optionally cycling through taxonomy levels, so that anchors find
positives at every level), takes ``K`` examples carrying each, and fills up to the batch size
with random examples, never repeating an example within a batch. ``strategy="random"`` gives
plain shuffled batches.

Distributed training: every process builds the same epoch plan from ``seed + epoch`` and keeps
every ``num_replicas``-th batch starting at its ``rank``, so processes get distinct batches and
the same number of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from hiercon.errors import ConfigError

Strategy = Literal["pk", "random"]
_STRATEGIES = ("pk", "random")


def label_lists(labels: Any) -> list[np.ndarray]:
    """Per-example arrays of label ids.

    ``labels`` is a multi-hot matrix ``[N, L]`` (floats, e.g. a ``List(float32)`` column), class
    ids ``[N]`` (integers, negative = no label) or per-example lists of integer label ids.
    """
    if hasattr(labels, "numpy"):
        labels = labels.numpy()
    if isinstance(labels, np.ndarray):
        return _array_label_lists(labels)
    rows = list(labels)
    if rows and all(np.ndim(row) == 0 for row in rows):
        return _array_label_lists(np.asarray(rows))
    if rows and len({len(row) for row in rows}) == 1:
        array = np.asarray(rows)
        if array.dtype.kind == "f":
            return _array_label_lists(array)
    return [np.asarray(row, dtype=np.int64) for row in rows]


def _array_label_lists(array: np.ndarray) -> list[np.ndarray]:
    if array.ndim == 2:
        return [np.flatnonzero(row > 0) for row in array]
    if array.ndim == 1:
        empty = np.array([], dtype=np.int64)
        return [np.array([int(value)]) if value >= 0 else empty for value in array]
    raise ConfigError(f"labels for the sampler must be [N] or [N, L], got shape {array.shape}")


class MultiLabelBatchSampler(Sampler[list[int]]):
    """Batches of distinct example indices with label-sharing positives.

    Args:
        labels: multi-hot ``[N, L]``, class ids ``[N]`` or per-example lists of label ids.
        batch_size: examples per batch (per process).
        samples_per_label: ``K``, examples drawn for each picked label.
        labels_per_batch: ``P``; defaults to ``batch_size // samples_per_label``.
        label_levels: optional level of each label id (e.g. ``taxonomy.levels``); picked labels then
            cycle through the levels.
        strategy: ``"pk"`` or ``"random"``.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        drop_last: drop the last incomplete batch of a ``"random"`` epoch.
        num_replicas, rank: the process group (read from ``torch.distributed`` when omitted).
    """

    def __init__(
        self,
        labels: Any,
        batch_size: int,
        samples_per_label: int = 2,
        labels_per_batch: int | None = None,
        label_levels: Sequence[int] | None = None,
        strategy: Strategy = "pk",
        seed: int = 0,
        drop_last: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ConfigError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if samples_per_label < 1 or samples_per_label > batch_size:
            raise ConfigError(
                f"samples_per_label must lie in [1, batch_size={batch_size}], got {samples_per_label}"
            )
        self.example_labels = label_lists(labels)
        self.num_examples = len(self.example_labels)
        if self.num_examples < batch_size:
            raise ConfigError(
                f"the dataset has {self.num_examples} examples, fewer than batch_size={batch_size}"
            )
        self.batch_size = batch_size
        self.samples_per_label = samples_per_label
        self.labels_per_batch = labels_per_batch or max(1, batch_size // samples_per_label)
        self.strategy = strategy
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.num_replicas, self.rank = _process_group(num_replicas, rank)
        self.label_members = self._members()
        self.level_labels = self._labels_by_level(label_levels)

    @classmethod
    def from_dataset(cls, dataset: Any, column: str = "labels", **kwargs: Any) -> MultiLabelBatchSampler:
        """Build from a ``datasets.Dataset`` (or any mapping of columns) holding a label column."""
        names = getattr(dataset, "column_names", None)
        if names is not None and column not in names:
            raise ConfigError(f"the dataset has no label column {column!r} (columns: {names})")
        return cls(dataset[column], **kwargs)

    def _members(self) -> dict[int, np.ndarray]:
        members: dict[int, list[int]] = {}
        for index, ids in enumerate(self.example_labels):
            for label in ids.tolist():
                members.setdefault(int(label), []).append(index)
        # Only labels with at least two examples can provide a positive pair.
        return {label: np.asarray(items) for label, items in members.items() if len(items) >= 2}

    def _labels_by_level(self, label_levels: Sequence[int] | None) -> list[np.ndarray]:
        usable = np.asarray(sorted(self.label_members), dtype=np.int64)
        if label_levels is None:
            return [usable]
        levels = np.asarray(label_levels)
        if usable.size and usable.max() >= len(levels):
            raise ConfigError(
                f"label id {int(usable.max())} has no level: label_levels covers {len(levels)} labels"
            )
        groups = [usable[levels[usable] == level] for level in np.unique(levels[usable])]
        return [group for group in groups if group.size]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._num_global_batches() // self.num_replicas

    def _num_global_batches(self) -> int:
        if self.strategy == "random" and not self.drop_last:
            return -(-self.num_examples // self.batch_size)
        return self.num_examples // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.epoch_plan(self.epoch)
        usable = (len(plan) // self.num_replicas) * self.num_replicas
        yield from plan[self.rank : usable : self.num_replicas]

    def epoch_plan(self, epoch: int) -> list[list[int]]:
        """Every process's batches of ``epoch``, in order (identical on all processes)."""
        rng = np.random.default_rng(self.seed + epoch)
        order = rng.permutation(self.num_examples)
        if self.strategy == "random" or not self.label_members:
            count = self._num_global_batches()
            return [order[i * self.batch_size : (i + 1) * self.batch_size].tolist() for i in range(count)]
        return [self._pk_batch(rng, order, step) for step in range(self._num_global_batches())]

    def _pk_batch(self, rng: np.random.Generator, order: np.ndarray, step: int) -> list[int]:
        batch: list[int] = []
        chosen: set[int] = set()
        for pick in range(self.labels_per_batch):
            if len(batch) >= self.batch_size:
                break
            candidates = self.level_labels[(step * self.labels_per_batch + pick) % len(self.level_labels)]
            label = int(candidates[rng.integers(len(candidates))])
            members = self.label_members[label]
            free = members[~np.isin(members, batch)] if batch else members
            room = min(self.samples_per_label, self.batch_size - len(batch), free.size)
            for index in rng.choice(free, size=room, replace=False).tolist():
                batch.append(index)
                chosen.add(index)
        # Fill up with examples in this epoch's order, starting where this batch's slice begins.
        start = (step * self.batch_size) % self.num_examples
        for index in np.concatenate([order[start:], order[:start]]).tolist():
            if len(batch) >= self.batch_size:
                break
            if index not in chosen:
                batch.append(index)
                chosen.add(index)
        return batch


def _process_group(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ConfigError(f"rank {rank} is not valid for num_replicas={num_replicas}")
    return num_replicas, rank
