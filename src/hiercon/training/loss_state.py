"""A loss module that carries its own state (e.g. REG's label prototypes): its record in a saved
model, its trainable parameters in the optimizer, and its state in checkpoints."""

from __future__ import annotations

import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def loss_info(loss: nn.Module) -> dict[str, Any]:
    """``{"loss": class name, "loss_config": its config() or {}, "citation": its citation or ""}``."""
    config = loss.config() if callable(getattr(loss, "config", None)) else {}
    return {"loss": type(loss).__name__, "loss_config": config, "citation": getattr(loss, "citation", "")}


def add_loss_parameters(optimizer: torch.optim.Optimizer, loss: nn.Module) -> torch.optim.Optimizer:
    """``optimizer`` with the loss's trainable parameters that it does not hold yet as a group of their
    own, without weight decay."""
    known = {id(p) for group in optimizer.param_groups for p in group["params"]}
    fresh = [p for p in loss.parameters() if p.requires_grad and id(p) not in known]
    if fresh:
        optimizer.add_param_group({"params": fresh, "weight_decay": 0.0})
    return optimizer


def save_loss_state(loss: nn.Module, path: str) -> None:
    """Write the loss's state dict to the safetensors file ``path``; nothing when it has no state."""
    state = {name: t.detach().contiguous().cpu() for name, t in loss.state_dict().items()}
    if state:
        save_file(state, path, metadata={"format": "pt"})


def load_loss_state(loss: nn.Module, path: str, device: str) -> None:
    """Load the safetensors file ``path`` into the loss (non-strict) where the file exists."""
    if os.path.isfile(path):
        loss.load_state_dict(load_file(path, device=device), strict=False)
