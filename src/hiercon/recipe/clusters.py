"""Cluster labels for the recipe's cluster losses (``stage1.clusters``).

- Cl-InfoNCE (Tsai et al., ICLR 2022) reads cluster ids: by default the nodes of one taxonomy level
  each example holds (``source: level``, the level above the finest by default), or the values of a
  data column (``source: column``), or k-means clusters of the encoder's embeddings, recomputed every
  ``every_n_epochs`` (``source: kmeans``, ``n_clusters`` defaulting to the number of labels).
- HCSC (Guo et al., CVPR 2022) reads hierarchical k-means prototypes of the training set, refreshed by
  the cluster callback; ``n_clusters`` (finest first) defaults to the taxonomy's level sizes.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback

from hiercon.errors import ConfigError
from hiercon.losses.clustering import taxonomy_level_clusters
from hiercon.recipe.arguments import Stage1Arguments
from hiercon.recipe.data import CLUSTERS, LABELS
from hiercon.recipe.loss_registry import loss_entry
from hiercon.taxonomy import LabelSpace


def cluster_column(stage1: Stage1Arguments) -> str | None:
    """The data column of cluster ids the loss reads, when the config names one."""
    if loss_entry(stage1.loss).feeds == "clusters" and stage1.clusters.get("source") == "column":
        return str(stage1.clusters["column"])
    return None


def level_depth(stage1: Stage1Arguments, label_space: LabelSpace) -> int:
    """The taxonomy depth whose nodes are the clusters (default: the level above the finest)."""
    levels = label_space.num_levels
    if levels < 2 and "level" not in stage1.clusters:
        raise ConfigError(
            "stage1.clusters.source 'level' needs a taxonomy with at least two levels; this one is flat: "
            "set stage1.clusters.source to 'kmeans' (or 'column')"
        )
    depth = int(stage1.clusters.get("level", levels - 2))
    if not 0 <= depth < levels:
        raise ConfigError(f"stage1.clusters.level must be a depth in 0..{levels - 1}, got {depth}")
    return depth


def cluster_counts(stage1: Stage1Arguments, label_space: LabelSpace, num_examples: int) -> list[int]:
    """Cluster counts per level, finest first: the configured ones, else the taxonomy's level sizes that
    fit the data (HCSC), or the number of labels (one k-means level)."""
    configured = stage1.clusters.get("n_clusters")
    if configured is not None:
        return [configured] if isinstance(configured, int) else list(configured)
    hierarchical = loss_entry(stage1.loss).feeds == "prototypes"
    taxonomy = label_space.taxonomy
    sizes = [len(taxonomy.level_labels(depth)) for depth in range(taxonomy.num_levels)] if hierarchical else []
    counts = sorted({size for size in sizes if 1 < size < num_examples}, reverse=True)
    return counts or [max(2, min(label_space.num_labels, num_examples - 1))]


def with_level_clusters(train: Dataset, stage1: Stage1Arguments, label_space: LabelSpace) -> Dataset:
    """``train`` with ``cluster_ids``: the multi-hot of the clusters' taxonomy level each example holds."""
    labels = torch.as_tensor(train[LABELS])
    clusters = taxonomy_level_clusters(label_space.taxonomy, labels, level_depth(stage1, label_space))
    return train.add_column(CLUSTERS, clusters.long().tolist())


def cluster_setup(
    stage1: Stage1Arguments, label_space: LabelSpace, train: Dataset, seed: int
) -> tuple[Dataset, list[TrainerCallback]]:
    """The stage-1 training set and callbacks that give the loss its cluster labels or prototypes."""
    from hiercon.training import ClusterCallback

    feeds = loss_entry(stage1.loss).feeds
    if feeds == "labels":
        return train, []
    source = stage1.clusters.get("source", "level")
    every: Any = stage1.clusters.get("every_n_epochs", 1)
    if feeds == "prototypes" or source == "kmeans":
        counts = cluster_counts(stage1, label_space, len(train))
        callback = ClusterCallback(
            every_n_epochs=every, n_clusters=counts, hierarchical=feeds == "prototypes", seed=seed
        )
        return train, [callback]
    if source == "level":
        return with_level_clusters(train, stage1, label_space), []
    return train, []
