"""MultiLabelBatchSampler: P labels x K examples for multi-label data, distributed plans, epochs."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from hiercon.errors import ConfigError
from hiercon.training import MultiLabelBatchSampler
from hiercon.training.samplers import label_lists


def multi_hot(num_examples: int = 60, num_labels: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((num_examples, num_labels), dtype=np.float32)
    labels[np.arange(num_examples), rng.integers(num_labels, size=num_examples)] = 1
    labels[rng.random(num_examples) < 0.3, 0] = 1  # a frequent second label
    return labels


def test_label_lists_reads_every_format():
    assert [x.tolist() for x in label_lists(np.array([[0, 1.0, 1], [1, 0, 0]]))] == [[1, 2], [0]]
    assert [x.tolist() for x in label_lists([2, -1, 0])] == [[2], [], [0]]
    assert [x.tolist() for x in label_lists([[0, 3], [1]])] == [[0, 3], [1]]
    assert [x.tolist() for x in label_lists([[0.0, 1.0], [1.0, 1.0]])] == [[1], [0, 1]]


def test_pk_batches_have_no_duplicates_and_label_sharing_positives():
    labels = multi_hot()
    sampler = MultiLabelBatchSampler(labels, batch_size=8, samples_per_label=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 60 // 8
    for batch in batches:
        assert len(batch) == 8 and len(set(batch)) == 8
        sets = labels[batch] > 0
        shared = (sets.astype(int) @ sets.T.astype(int)) > 0
        np.fill_diagonal(shared, False)
        # P=2 labels with K=4 carriers each: some label is carried by 4 examples, and most
        # examples have a positive.
        assert sets.sum(axis=0).max() >= 4
        assert (shared.sum(axis=1) >= 1).sum() >= 6


def test_plan_is_deterministic_per_epoch_and_changes_with_set_epoch():
    labels = multi_hot()
    a = MultiLabelBatchSampler(labels, batch_size=8, seed=5)
    b = MultiLabelBatchSampler(labels, batch_size=8, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


def test_ranks_take_distinct_batches_of_one_shared_plan():
    labels = multi_hot(num_examples=70)
    ranks = [MultiLabelBatchSampler(labels, batch_size=4, seed=2, num_replicas=3, rank=r) for r in range(3)]
    plan = ranks[0].epoch_plan(0)
    per_rank = [list(sampler) for sampler in ranks]
    assert len({len(batches) for batches in per_rank}) == 1 == len({len(s) for s in ranks})
    assert len(per_rank[0]) == len(plan) // 3
    for r, batches in enumerate(per_rank):
        assert batches == plan[r : len(per_rank[0]) * 3 : 3]
    flat = [tuple(b) for batches in per_rank for b in batches]
    assert len(flat) == len(set(flat))


def test_random_strategy_covers_every_example_once():
    sampler = MultiLabelBatchSampler(multi_hot(num_examples=40), batch_size=8, strategy="random", seed=0)
    seen = [i for batch in sampler for i in batch]
    assert sorted(seen) == list(range(40))
    tail = MultiLabelBatchSampler(
        multi_hot(num_examples=42), batch_size=8, strategy="random", drop_last=False
    )
    assert len(list(tail)) == 6 and len(list(tail)[-1]) == 2


def test_taxonomy_levels_are_cycled_so_every_level_is_picked():
    # labels 0-1 at level 0, 2-5 at level 1; every example carries a level-0 and a level-1 label
    rows = [[0, 2], [0, 3], [1, 4], [1, 5]] * 10
    levels = [0, 0, 1, 1, 1, 1]
    sampler = MultiLabelBatchSampler(rows, batch_size=4, samples_per_label=2, label_levels=levels, seed=0)
    for batch in sampler:
        sets = [set(rows[i]) for i in batch]
        fine_pairs = sum(1 for i in range(4) for j in range(i + 1, 4) if sets[i] & sets[j] & {2, 3, 4, 5})
        coarse_pairs = sum(1 for i in range(4) for j in range(i + 1, 4) if sets[i] & sets[j] & {0, 1})
        assert fine_pairs >= 1 and coarse_pairs >= 1


def test_from_dataset_and_bad_settings():
    dataset = Dataset.from_dict({"labels": multi_hot(num_examples=16).tolist()})
    assert len(MultiLabelBatchSampler.from_dataset(dataset, batch_size=4)) == 4
    with pytest.raises(ConfigError, match="no label column 'tags'"):
        MultiLabelBatchSampler.from_dataset(dataset, column="tags", batch_size=4)
    with pytest.raises(ConfigError, match="strategy"):
        MultiLabelBatchSampler(multi_hot(), batch_size=4, strategy="balanced")
    with pytest.raises(ConfigError, match="fewer than batch_size"):
        MultiLabelBatchSampler(multi_hot(num_examples=3), batch_size=4)
    with pytest.raises(ConfigError, match="rank"):
        MultiLabelBatchSampler(multi_hot(), batch_size=4, num_replicas=2, rank=2)
