"""Pooling: one vector per example from an encoder's output, and the pooler layer it may read.

``pooling="auto"`` pools what the architecture's ``AutoModelFor*Classification`` head reads, so the
feature that stage 1 shapes is the feature that the stage-2 head sees. For BERT-like models that
is the pooler layer, which many checkpoints never trained (sentence-transformers models are trained
on mean-pooled tokens; their pooler output barely depends on the input). :func:`untrained_pooler`
detects such a pooler from the checkpoint itself, and :func:`start_pooler` then starts it as the
identity, so that the pooled feature is ``tanh`` of the first-token state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from hiercon.errors import ConfigError
from hiercon.modeling.adapters import base_model_of

logger = logging.getLogger(__name__)

POOLING_MODES = ("cls", "mean", "pooler", "auto")
IDENTITY_POOLER_CHOICES = ("auto", "true", "false")

# Families whose ``*For{Sequence,Image}Classification`` head reads the encoder's pooler output.
_POOLER_HEAD_FAMILIES = frozenset(
    {"bert", "albert", "ernie", "megatron-bert", "mobilebert", "nezha", "layoutlm"}
    | {"bit", "convnext", "convnextv2", "focalnet", "regnet", "resnet", "swin", "swinv2"}
)
# A pooler counts as untrained when it passes on less than this share of the variation of its input
# across a probe batch (an identity pooler passes on all of it). Measured: the pooler of the packaged
# all-MiniLM-L6-v2 passes on 0.19, a freshly initialised one 0.17, an orthogonal one 0.95-1.03.
UNTRAINED_POOLER_GAIN = 0.5
_PROBE_BATCH, _PROBE_LENGTH = 8, 16


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
        return head_pooling(encoder)
    if pooling == "pooler" and not has_pooler(encoder):
        raise ConfigError(
            f"pooling='pooler' needs an encoder with a pooler layer, but this {type(encoder).__name__} "
            f"(model_type {model_type!r}) has none; use pooling='cls' or 'mean'"
        )
    return pooling


def head_pooling(encoder: nn.Module) -> str:
    """The features the architecture's classification head reads: ``pooler``, ``mean`` or ``cls``.

    BERT-like text families and pooled vision families read the pooler output (when the encoder
    has a pooler); models whose config names a ``classifier_pooling`` (ModernBERT) read that; the
    others read the first (``[CLS]``) token.
    """
    config = getattr(encoder, "config", None)
    if getattr(config, "model_type", "") in _POOLER_HEAD_FAMILIES and has_pooler(encoder):
        return "pooler"
    declared = getattr(config, "classifier_pooling", None)
    return declared if declared in ("mean", "cls") else "cls"


def pooler_dense(encoder: nn.Module) -> nn.Linear | None:
    """The square dense layer of a BERT-style pooler (``tanh(dense(first token))``), or None."""
    dense = getattr(getattr(base_model_of(encoder), "pooler", None), "dense", None)
    if isinstance(dense, nn.Linear) and dense.in_features == dense.out_features:
        return dense
    return None


def _probe_outputs(encoder: nn.Module, seed: int) -> Any:
    """The encoder's outputs on a fixed batch of random token ids (eval mode, no gradients)."""
    base = base_model_of(encoder)
    config = base.config
    length = min(
        _PROBE_LENGTH, int(getattr(config, "max_position_embeddings", _PROBE_LENGTH) or _PROBE_LENGTH)
    )
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, int(config.vocab_size), (_PROBE_BATCH, length), generator=generator)
    device = next(base.parameters()).device
    was_training = base.training
    base.eval()
    try:
        with torch.no_grad():
            return base(input_ids=input_ids.to(device), return_dict=True)
    finally:
        base.train(was_training)


def pooler_gain(encoder: nn.Module, seed: int = 0) -> float:
    """How much of its input's variation a BERT-style pooler passes on, on a probe batch.

    The spread (per-feature standard deviation across a batch of random token sequences, averaged
    over features) of the pooler output, divided by that of ``tanh`` of the first-token state, the
    output of an identity pooler: about 1 for an identity or trained pooler, near 0 for a pooler
    whose output hardly depends on the input.
    """
    if pooler_dense(encoder) is None:
        raise ConfigError(f"{type(encoder).__name__} has no BERT-style pooler (a square dense layer)")
    outputs = _probe_outputs(encoder, seed)
    reference = torch.tanh(outputs.last_hidden_state[:, 0]).float().std(dim=0).mean()
    spread = outputs.pooler_output.float().std(dim=0).mean()
    return float(spread / reference.clamp_min(1e-12))


def untrained_pooler(encoder: nn.Module, missing_keys: Iterable[str] = ()) -> str | None:
    """Why the encoder's BERT-style pooler counts as untrained, or None when it looks trained.

    ``missing_keys`` are the weights the checkpoint lacked when the encoder was loaded
    (``from_pretrained(..., output_loading_info=True)``): pooler weights among them mean the pooler
    was initialised at random. Otherwise the pooler is untrained when its output is near-constant:
    :func:`pooler_gain` below :data:`UNTRAINED_POOLER_GAIN`. An encoder without such a pooler gives None.
    """
    if pooler_dense(encoder) is None:
        return None
    absent = sorted(key for key in missing_keys if key.startswith("pooler.") or ".pooler." in key)
    if absent:
        return f"its weights ({', '.join(absent)}) are absent from the checkpoint"
    gain = pooler_gain(encoder)
    if gain < UNTRAINED_POOLER_GAIN:
        return (
            f"its output is near-constant (it passes on {gain:.2f} of the variation of the first-token "
            f"state, under {UNTRAINED_POOLER_GAIN})"
        )
    return None


def set_identity_pooler(encoder: nn.Module) -> None:
    """Make the pooler's dense layer the identity, so that the pooled output is ``tanh([CLS] state)``."""
    dense = pooler_dense(encoder)
    if dense is None:
        raise ConfigError(
            f"identity_pooler: {type(base_model_of(encoder)).__name__} has no square pooler layer to start as the identity"
        )
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.in_features, dtype=dense.weight.dtype))
        if dense.bias is not None:
            dense.bias.zero_()


def identity_pooler_choice(value: str | bool) -> str:
    """``"auto"``, ``"true"`` or ``"false"`` from a bool or (case-insensitive) text."""
    text = str(value).lower()
    if text not in IDENTITY_POOLER_CHOICES:
        raise ConfigError(
            f"identity_pooler must be one of {IDENTITY_POOLER_CHOICES} (or a bool), got {value!r}"
        )
    return text


def start_pooler(
    encoder: nn.Module, identity_pooler: str | bool = "auto", missing_keys: Iterable[str] = ()
) -> str | None:
    """Start the encoder's pooler as the identity when told to, or (``"auto"``) when it is untrained.

    ``"auto"`` acts only where the classification head reads the pooler (:func:`head_pooling`) and
    :func:`untrained_pooler` finds it untrained. Returns why the pooler was set, or None when it was
    left as loaded.
    """
    choice = identity_pooler_choice(identity_pooler)
    if choice == "false":
        return None
    if choice == "true":
        set_identity_pooler(encoder)
        return "identity_pooler is true"
    if head_pooling(base_model_of(encoder)) != "pooler":
        return None
    reason = untrained_pooler(encoder, missing_keys)
    if reason is not None:
        set_identity_pooler(encoder)
        logger.info(
            "the pooler of %s is untrained: %s; it starts as the identity", type(encoder).__name__, reason
        )
    return reason


def pool(outputs: Any, mode: str, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, hidden]`` features from an encoder output by ``mode`` (``cls``, ``mean`` or ``pooler``).

    ``mean`` averages the token states where ``attention_mask`` is 1 (all tokens without a mask).
    """
    if mode == "pooler":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ConfigError("pooling='pooler' but the encoder returned no pooler_output")
        return pooled.flatten(1)
    hidden = outputs.last_hidden_state
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        if attention_mask is None:
            return hidden.mean(dim=1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    raise ConfigError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
