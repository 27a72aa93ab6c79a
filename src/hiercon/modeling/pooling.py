"""Pooling: one vector per example from an encoder's output."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hiercon.errors import ConfigError
from hiercon.modeling.adapters import base_model_of

POOLING_MODES = ("cls", "mean", "pooler", "auto")

# Families whose ``*ForSequenceClassification`` head reads the encoder's pooler output.
_POOLER_HEAD_FAMILIES = frozenset(
    {"bert", "albert", "ernie", "megatron-bert", "mobilebert", "nezha", "layoutlm"}
)


def has_pooler(encoder: nn.Module) -> bool:
    """Whether ``encoder`` (a transformers base model, possibly wrapped by peft) has a pooler layer."""
    return getattr(base_model_of(encoder), "pooler", None) is not None


def resolve_pooling(pooling: str, encoder: nn.Module) -> str:
    """Turn ``pooling`` into a concrete mode and check that the encoder supports it.

    ``"auto"`` is what the architecture's ``AutoModelFor*Classification`` head consumes: the pooler
    output for BERT-like families that have a pooler, else the first (``[CLS]``) token.
    """
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
    model_type = getattr(getattr(encoder, "config", None), "model_type", "")
    if pooling == "auto":
        return "pooler" if model_type in _POOLER_HEAD_FAMILIES and has_pooler(encoder) else "cls"
    if pooling == "pooler" and not has_pooler(encoder):
        raise ConfigError(
            f"pooling='pooler' needs an encoder with a pooler layer, but this {type(encoder).__name__} "
            f"(model_type {model_type!r}) has none; use pooling='cls' or 'mean'"
        )
    return pooling


def pool(outputs: Any, mode: str, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, hidden]`` features from an encoder output by ``mode`` (``cls``, ``mean`` or ``pooler``).

    ``mean`` averages the token states where ``attention_mask`` is 1 (all tokens without a mask).
    """
    if mode == "pooler":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ConfigError("pooling='pooler' but the encoder returned no pooler_output")
        return pooled
    hidden = outputs.last_hidden_state
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    raise ConfigError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
