"""peft (LoRA) wrappers seen from plain transformers: detecting them and reading the wrapped weights."""

from __future__ import annotations

import torch
from torch import nn


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
