"""The base class shared by hiercon's losses."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from hiercon.losses.core import check_temperature


class ContrastiveLoss(nn.Module):
    """A hiercon loss: ``loss(embeddings, labels, **extra)`` returns a scalar tensor, or a dict
    of named scalar parts whose sum is the loss.

    Subclasses set ``citation`` (BibTeX, used by model cards) and ``label_kind``, one of
    ``"class_ids"``, ``"multi_hot"``, ``"paths"``, ``"clusters"``, ``"none"``: what the trainer
    feeds as ``labels``.
    """

    citation: ClassVar[str] = ""
    label_kind: ClassVar[str] = "multi_hot"

    def __init__(self, temperature: float = 0.1, gather_across_processes: bool = True) -> None:
        super().__init__()
        check_temperature(temperature)
        self.temperature = float(temperature)
        self.gather_across_processes = gather_across_processes

    def config(self) -> dict[str, object]:
        """Hyperparameters worth recording in a model card (plain JSON values)."""
        return {
            key: value
            for key, value in vars(self).items()
            if not key.startswith("_") and key != "training" and isinstance(value, (int, float, str, bool))
        }

    @staticmethod
    def total(loss: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """The scalar loss of a loss's output (the sum of the parts of a dict)."""
        if isinstance(loss, dict):
            return torch.stack([part for part in loss.values()]).sum()
        return loss
