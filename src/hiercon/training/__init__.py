"""Trainers: stage 1 (:class:`ContrastiveTrainer`) and stage 2 (``ClassifierTrainer``)."""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    # The stage-2 trainer lives in its own module, loaded on first use.
    if name == "ClassifierTrainer":
        try:
            module = importlib.import_module("hiercon.training.classifier_trainer")
        except ModuleNotFoundError as error:
            if error.name != "hiercon.training.classifier_trainer":
                raise
            raise AttributeError(
                "hiercon.training.ClassifierTrainer is not available in this installation"
            ) from error
        return module.ClassifierTrainer
    raise AttributeError(f"module 'hiercon.training' has no attribute {name!r}")
