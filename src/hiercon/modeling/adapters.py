"""peft (LoRA) adapters: building a LoRA config, detecting a wrapped model, reading the weights under
the wrapper, and merging the adapter back into a plain transformers model."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from peft import LoraConfig


def lora_config(
    r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: Sequence[str] | None = None
) -> LoraConfig:
    """A ``peft.LoraConfig`` of rank ``r``; ``target_modules`` None leaves peft's (or the wrapping
    code's) default for the architecture."""
    from peft import LoraConfig

    targets = list(target_modules) if target_modules is not None else None
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)


def is_peft(module: nn.Module) -> bool:
    """True for a ``peft.PeftModel`` (a LoRA-wrapped encoder or classifier)."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(module, PeftModel)


def base_model_of(module: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper; the module itself when it is not wrapped."""
    return module.get_base_model() if is_peft(module) else module


def weights_without_adapter(base: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of a transformers model under their plain names, as if no adapter had been injected.

    LoRA tensors and ``modules_to_save`` copies are left out; the layers they wrap (``base_layer``,
    ``original_module``) are read back under the wrapped layer's own name. A model without adapter
    layers gives its ``state_dict()`` unchanged.
    """
    plain: dict[str, torch.Tensor] = {}
    for key, tensor in base.state_dict().items():
        parts = key.split(".")
        if "modules_to_save" in parts or any(part.startswith("lora_") for part in parts):
            continue
        plain[key.replace(".base_layer.", ".").replace(".original_module.", ".")] = tensor
    return plain


def merge_lora(model: nn.Module) -> nn.Module:
    """A plain transformers model: the peft adapter merged into a copy of the weights (others unchanged)."""
    if not is_peft(model):
        return model
    return copy.deepcopy(model).merge_and_unload()
