"""Trainers: stage 1 (:class:`ContrastiveTrainer`) and stage 2 (``ClassifierTrainer``; the one-stage
``JointClassifierTrainer``), with their batch samplers, collators and callbacks.

Stage-1 metrics and threshold tuning live in :mod:`hiercon.metrics`, the stage-2 losses in
:mod:`hiercon.losses`, the hierarchical k-means in :mod:`hiercon.taxonomy`.
"""

from __future__ import annotations

from hiercon._lazy import lazy_exports
from hiercon.training.callbacks import ClusterCallback, MomentumCallback
from hiercon.training.collators import ContrastiveDataCollator
from hiercon.training.contrastive_trainer import ContrastiveTrainer
from hiercon.training.prediction import predict_embeddings
from hiercon.training.samplers import MultiLabelBatchSampler

__all__ = [
    "ClassifierTrainer",
    "ClusterCallback",
    "ContrastiveDataCollator",
    "ContrastiveTrainer",
    "JointClassifierTrainer",
    "MomentumCallback",
    "MultiLabelBatchSampler",
    "predict_embeddings",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "ClassifierTrainer": "hiercon.training.classifier_trainer",
        "JointClassifierTrainer": "hiercon.training.joint_trainer",
    },
)
