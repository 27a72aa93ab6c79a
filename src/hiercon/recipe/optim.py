"""A separate learning rate for the classification head of a stage-2 classifier.

A freshly initialised head next to a pretrained encoder learns slowly at an encoder-sized
learning rate (a short BCE run stays at the label prior), while an encoder at a head-sized rate
forgets what it knew. ``stage2.head_learning_rate`` gives the head its own rate.
"""

from __future__ import annotations

from typing import Any

import torch

from hiercon.modeling.adapters import base_model_of


def head_parameter_ids(model: Any) -> set[int]:
    """Ids of the trainable parameters outside the classifier's base model (its head)."""
    base = base_model_of(model)
    prefix = base.base_model_prefix + "."
    return {id(parameter) for name, parameter in base.named_parameters() if not name.startswith(prefix)}


def give_head_its_learning_rate(optimizer: torch.optim.Optimizer, model: Any, learning_rate: float) -> None:
    """Move the head's parameters of every param group into a twin group with ``learning_rate``."""
    head_ids = head_parameter_ids(model)
    twins = []
    for group in optimizer.param_groups:
        head = [parameter for parameter in group["params"] if id(parameter) in head_ids]
        if head:
            group["params"] = [parameter for parameter in group["params"] if id(parameter) not in head_ids]
            settings = {key: value for key, value in group.items() if key != "params"}
            twins.append({**settings, "params": head, "lr": learning_rate})
    for twin in twins:
        optimizer.add_param_group(twin)


def with_head_learning_rate(trainer_class: type) -> type:
    """``trainer_class`` whose optimizer gives the head ``head_learning_rate`` (when set)."""

    class HeadLearningRateTrainer(trainer_class):
        def __init__(self, *args: Any, head_learning_rate: float | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.head_learning_rate = head_learning_rate
            self._head_group_made = False

        def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
            optimizer = super().create_optimizer(model)
            if self.head_learning_rate is not None and not self._head_group_made:
                give_head_its_learning_rate(optimizer, self.model, self.head_learning_rate)
                self._head_group_made = True
            return optimizer

    HeadLearningRateTrainer.__name__ = f"{trainer_class.__name__}WithHeadLearningRate"
    return HeadLearningRateTrainer
