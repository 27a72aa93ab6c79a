"""Trainer callbacks for stage 1: re-clustering the training set, and momentum-encoder updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from transformers import TrainerCallback

from hiercon.errors import ConfigError
from hiercon.training.collators import ContrastiveDataCollator


def hierarchical_kmeans(
    embeddings: np.ndarray, n_clusters: Sequence[int], seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bottom-up k-means (HCSC, Guo et al. 2022): level 0 clusters the embeddings, level ``l + 1``
    clusters the L2-normalised centroids of level ``l``.

    Returns the per-example assignments ``[n, levels]`` (level ``l + 1`` composed through the
    parent map) and the L2-normalised centroids of each level.
    """
    points = embeddings.astype(np.float32)
    assignments: list[np.ndarray] = []
    centroids: list[np.ndarray] = []
    current = np.arange(points.shape[0])
    for level, count in enumerate(n_clusters):
        if count > points.shape[0]:
            raise ConfigError(
                f"level {level} asks for {count} clusters but has only {points.shape[0]} points"
            )
        kmeans = KMeans(n_clusters=count, n_init=3, random_state=seed).fit(points)
        current = kmeans.labels_[current]
        assignments.append(current)
        centres = kmeans.cluster_centers_
        points = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        centroids.append(points)
    return np.stack(assignments, axis=1), centroids


class ClusterCallback(TrainerCallback):
    """Recomputes k-means cluster labels of the training set every ``every_n_epochs`` epochs.

    At the start of training and of every ``every_n_epochs``-th epoch it embeds ``dataset`` (the
    trainer's training set by default) with the current model, runs (hierarchical) k-means with
    ``n_clusters`` clusters per level, and stores the assignments in the trainer:
    ``trainer.cluster_assignments`` holds the ids of level ``label_level`` (the labels of a
    ``"clusters"`` loss such as ``ClInfoNCELoss``) and ``trainer.cluster_hierarchy`` all levels.
    A loss with ``fit_prototypes(embeddings, n_clusters, seed)`` (HCSC) clusters the embeddings
    itself and its assignments are used; a loss with only ``set_prototypes(centroids,
    assignments)`` receives the k-means centroids of every level. List ``n_clusters`` finest first.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_clusters: int | Sequence[int] = (10,),
        dataset: Any = None,
        hierarchical: bool = True,
        label_level: int = 0,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.n_clusters = (n_clusters,) if isinstance(n_clusters, int) else tuple(n_clusters)
        if every_n_epochs < 1 or not self.n_clusters or min(self.n_clusters) < 1:
            raise ConfigError(
                f"ClusterCallback needs every_n_epochs >= 1 and positive cluster counts, got {every_n_epochs}, "
                f"{n_clusters}"
            )
        if not 0 <= label_level < len(self.n_clusters):
            raise ConfigError(f"label_level {label_level} is not one of the {len(self.n_clusters)} levels")
        self.every_n_epochs = every_n_epochs
        self.dataset = dataset
        self.hierarchical = hierarchical
        self.label_level = label_level
        self.batch_size = batch_size
        self.seed = seed
        self.trainer: Any = None
        self.centroids: list[np.ndarray] = []

    def attach(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.recluster()

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(round(state.epoch or 0))
        if epoch > 0 and epoch % self.every_n_epochs == 0:
            self.recluster()

    @torch.no_grad()
    def embed(self) -> np.ndarray:
        """Embeddings (projection-head output) of the dataset, in row order."""
        trainer = self._require_trainer()
        dataset = self.dataset if self.dataset is not None else trainer.train_dataset
        model = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(dataset, "column_names"):
            keep = [
                c
                for c in ("input_ids", "attention_mask", "token_type_ids", "pixel_values")
                if c in dataset.column_names
            ]
            dataset = dataset.select_columns(keep)
        tokenizer = trainer.processing_class if hasattr(trainer.processing_class, "pad") else None
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=False, collate_fn=ContrastiveDataCollator(tokenizer)
        )
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        parts = [
            model(**{k: v.to(device) for k, v in batch.items()}).embeddings.float().cpu() for batch in loader
        ]
        model.train(was_training)
        return torch.cat(parts).numpy()

    def recluster(self) -> None:
        """Embed the dataset, cluster it, and hand the assignments (and prototypes) over."""
        trainer = self._require_trainer()
        embeddings = self.embed()
        loss = trainer.loss
        if hasattr(loss, "fit_prototypes"):
            # A prototype loss (HCSC) clusters by itself and estimates its concentrations.
            prototypes = loss.fit_prototypes(torch.as_tensor(embeddings), self.n_clusters, self.seed)
            hierarchy = torch.as_tensor(prototypes.assignments, dtype=torch.long).cpu()
            self.centroids = [c.cpu().numpy() for c in prototypes.centroids]
        else:
            cluster = hierarchical_kmeans if self.hierarchical else self._flat_kmeans
            assignments, self.centroids = cluster(embeddings, self.n_clusters, self.seed)
            hierarchy = torch.as_tensor(assignments, dtype=torch.long)
            if hasattr(loss, "set_prototypes"):
                loss.set_prototypes([torch.as_tensor(c) for c in self.centroids], hierarchy)
        trainer.cluster_hierarchy = hierarchy
        trainer.cluster_assignments = hierarchy[:, self.label_level].contiguous()

    @staticmethod
    def _flat_kmeans(
        embeddings: np.ndarray, n_clusters: Sequence[int], seed: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        columns, centroids = [], []
        for count in n_clusters:
            assignment, centres = hierarchical_kmeans(embeddings, (count,), seed)
            columns.append(assignment[:, 0])
            centroids += centres
        return np.stack(columns, axis=1), centroids

    def _require_trainer(self) -> Any:
        if self.trainer is None:
            raise ConfigError("ClusterCallback must be passed to a ContrastiveTrainer (callbacks=[...])")
        return self.trainer


class MomentumCallback(TrainerCallback):
    """Moves a :class:`~hiercon.losses.momentum.MomentumEncoder` towards the model after every
    optimiser step (``key = m * key + (1 - m) * online``)."""

    def __init__(self, momentum_encoder: Any) -> None:
        self.momentum_encoder = momentum_encoder

    def on_step_end(self, args, state, control, **kwargs):
        self.momentum_encoder.update()
