"""Trainer callbacks for stage 1: re-clustering the training set, and momentum-encoder updates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from hiercon.errors import ConfigError
from hiercon.taxonomy.data_driven import hierarchical_kmeans
from hiercon.training.prediction import embeddings_of, model_inputs_only


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

    def embed(self) -> np.ndarray:
        """Embeddings (projection-head output) of the dataset, in row order, from the trainer's
        ``predict`` (evaluation mode, gathered across processes). The label columns are left out, so no
        loss is computed, and the trainer's ``compute_metrics`` is skipped."""
        trainer = self._require_trainer()
        dataset = self.dataset if self.dataset is not None else trainer.train_dataset
        dataset = model_inputs_only(dataset, keep=getattr(trainer, "extra_label_names", ()))
        model = trainer.model
        was_training = model.training
        compute_metrics, trainer.compute_metrics = trainer.compute_metrics, None
        batch_size, trainer.args.per_device_eval_batch_size = trainer.args.per_device_eval_batch_size, self.batch_size
        try:
            output = trainer.predict(dataset)
        finally:
            trainer.compute_metrics = compute_metrics
            trainer.args.per_device_eval_batch_size = batch_size
            model.train(was_training)
        return embeddings_of(output, len(dataset))

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
            cluster = self._hierarchical_kmeans if self.hierarchical else self._flat_kmeans
            assignments, self.centroids = cluster(embeddings, self.n_clusters, self.seed)
            hierarchy = torch.as_tensor(assignments, dtype=torch.long)
            if hasattr(loss, "set_prototypes"):
                loss.set_prototypes([torch.as_tensor(c) for c in self.centroids], hierarchy)
        trainer.cluster_hierarchy = hierarchy
        trainer.cluster_assignments = hierarchy[:, self.label_level].contiguous()

    @staticmethod
    def _hierarchical_kmeans(
        embeddings: np.ndarray, n_clusters: Sequence[int], seed: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Bottom-up k-means (HCSC, Guo et al. 2022; :func:`~hiercon.taxonomy.hierarchical_kmeans`): the
        ``[n, levels]`` assignments and each level's L2-normalised centroids."""
        clustering = hierarchical_kmeans(embeddings, n_clusters, seed=seed, normalize=False)
        centroids = [torch.nn.functional.normalize(c, dim=1).numpy() for c in clustering.centroids]
        return clustering.assignments.numpy(), centroids

    @classmethod
    def _flat_kmeans(
        cls, embeddings: np.ndarray, n_clusters: Sequence[int], seed: int
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One independent k-means per cluster count."""
        columns, centroids = [], []
        for count in n_clusters:
            assignment, centres = cls._hierarchical_kmeans(embeddings, (count,), seed)
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
