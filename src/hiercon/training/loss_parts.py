"""Running means of a loss's named parts (e.g. ``bce`` and ``consistency``), logged as ``loss_<name>``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch


class LossPartsMeter:
    """Sums each named part of the training loss between two training logs."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0

    def add(self, parts: Mapping[str, torch.Tensor]) -> None:
        """Record the parts of one training step's loss."""
        for name, value in parts.items():
            value = value.detach().float()
            self._sums[name] = self._sums.get(name, torch.zeros_like(value)) + value
        self._steps += 1

    def pop_logs(
        self, gather: Callable[[torch.Tensor], torch.Tensor], digits: int = 4
    ) -> dict[str, float]:
        """``{"loss_<name>": mean since the last call}``, averaged over processes with ``gather`` (an
        all-gather such as ``accelerator.gather``); then starts afresh. Empty when nothing was recorded."""
        if not self._steps:
            return {}
        logs = {
            f"loss_{name}": round(float(gather((total / self._steps).reshape(1)).mean()), digits)
            for name, total in self._sums.items()
        }
        self._sums, self._steps = {}, 0
        return logs


class LossPartsLogging:
    """Trainer mixin: each training log gains the mean of each named loss part since the last log,
    read from the trainer's ``loss_parts`` (a :class:`LossPartsMeter`) and rounded to ``loss_part_digits``."""

    loss_part_digits = 4

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each named loss part since the last log to a training log."""
        if "loss" in logs:
            logs.update(self.loss_parts.pop_logs(self.accelerator.gather, digits=self.loss_part_digits))
        super().log(logs, start_time)
