"""Trainers: stage 1 (:class:`ContrastiveTrainer`) and stage 2 (``ClassifierTrainer``)."""

from __future__ import annotations

from hiercon._lazy import lazy_exports
from hiercon.training.callbacks import ClusterCallback, MomentumCallback, hierarchical_kmeans
from hiercon.training.collators import ContrastiveDataCollator
from hiercon.training.contrastive_trainer import ContrastiveTrainer
from hiercon.training.samplers import MultiLabelBatchSampler
from hiercon.training.stage1_metrics import make_stage1_compute_metrics, stage1_metrics

__all__ = [
    "ClassifierTrainer",
    "ClusterCallback",
    "ContrastiveDataCollator",
    "ContrastiveTrainer",
    "MomentumCallback",
    "MultiLabelBatchSampler",
    "hierarchical_kmeans",
    "make_stage1_compute_metrics",
    "stage1_metrics",
]

__getattr__, __dir__ = lazy_exports(globals(), {"ClassifierTrainer": "hiercon.training.classifier_trainer"})
