"""peft (LoRA) adapters: every peft operation hiercon performs.

Building a LoRA config and wrapping an encoder or a classifier with it, detecting a wrapped model,
reading the weights under the wrapper, recording an adapter's settings, carrying a stage-1 adapter
over to a classifier, saving and loading adapters, and merging an adapter back into a plain
transformers model.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hiercon.errors import ConfigError

if TYPE_CHECKING:
    from peft import LoraConfig, PeftConfig

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
_DEFAULT_LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}


# ---- configs ------------------------------------------------------------------------------------


def lora_config(
    r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: Sequence[str] | None = None
) -> LoraConfig:
    """A ``peft.LoraConfig`` of rank ``r``; ``target_modules`` None leaves the default targets of
    :func:`apply_lora` (peft's for the architecture, else every linear layer)."""
    from peft import LoraConfig

    targets = list(target_modules) if target_modules is not None else None
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)


def config_record(config: PeftConfig) -> dict[str, Any]:
    """A peft config as a JSON-safe dict (sets and enums written as strings), for records and cards."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def adapter_record(model: nn.Module) -> dict[str, Any] | None:
    """The JSON-safe config of a wrapped model's active adapter; None for a model without adapter."""
    if not is_peft(model):
        return None
    return config_record(model.peft_config[model.active_adapter])


# ---- detecting and unwrapping ---------------------------------------------------------------------


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


def merge_lora(model: nn.Module, in_place: bool = False) -> nn.Module:
    """A plain transformers model with the peft adapter merged into its weights; a model without
    adapter is returned as is. The merge works on a copy unless ``in_place``, which spends the wrapper."""
    if not is_peft(model):
        return model
    return (model if in_place else copy.deepcopy(model)).merge_and_unload()


# ---- wrapping -------------------------------------------------------------------------------------


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level modules of a classifier that hold parameters outside its base model (the head);
    none for a bare encoder."""
    if getattr(model, "base_model", model) is model:
        return []
    prefix = model.base_model_prefix
    return [
        name
        for name, module in model.named_children()
        if name != prefix and any(True for _ in module.parameters())
    ]


def default_lora_targets(model: nn.Module) -> list[str]:
    """peft's default LoRA targets for the architecture, else every linear layer of the base model."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model.config.model_type)
    if known:
        return list(known)
    heads = set(head_module_names(model))
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[0] not in heads
    ]


def apply_lora(model: nn.Module, lora_config: PeftConfig | None = None, **lora_options: Any) -> nn.Module:
    """Wrap a transformers encoder or classifier with a LoRA adapter; a classification head stays
    fully trainable.

    ``lora_config`` defaults to ``LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, **lora_options)``;
    without target modules it targets :func:`default_lora_targets`. A classifier's head modules are
    added to ``modules_to_save`` so they train and save with the adapter.
    """
    from peft import LoraConfig, get_peft_model

    if is_peft(model):
        raise ConfigError(f"this {type(base_model_of(model)).__name__} already carries a peft adapter")
    if lora_config is None:
        lora_config = LoraConfig(**{**_DEFAULT_LORA, **lora_options})
    elif lora_options:
        raise ConfigError("pass either a LoraConfig or LoRA keyword options, not both")
    lora_config = copy.deepcopy(lora_config)
    if lora_config.target_modules is None and getattr(lora_config, "target_parameters", None) is None:
        lora_config.target_modules = default_lora_targets(model)
    heads = head_module_names(model)
    if heads:
        lora_config.modules_to_save = sorted(set(lora_config.modules_to_save or []) | set(heads))
    if _is_sequence_classifier(model) and lora_config.task_type is None:
        lora_config.task_type = "SEQ_CLS"
    return get_peft_model(model, lora_config)


def carry_adapter(classifier: nn.Module, encoder: nn.Module) -> nn.Module:
    """Wrap ``classifier`` with the LoRA adapter of a wrapped ``encoder`` (same settings, same weights),
    its head trainable, so that stage 2 goes on training the stage-1 adapter."""
    from peft import get_peft_model

    adapter_name = encoder.active_adapter
    config = copy.deepcopy(encoder.peft_config[adapter_name])
    config.modules_to_save = sorted(set(config.modules_to_save or []) | set(head_module_names(classifier)))
    config.task_type = "SEQ_CLS" if _is_sequence_classifier(classifier) else None
    wrapped = get_peft_model(classifier, config, adapter_name=adapter_name)
    outer = "base_model.model."
    inner = outer + classifier.base_model_prefix + "."
    adapter_state = {
        inner + key[len(outer) :]: value
        for key, value in encoder.state_dict().items()
        if key.startswith(outer) and any(part.startswith("lora_") for part in key.split("."))
    }
    unexpected = wrapped.load_state_dict(adapter_state, strict=False).unexpected_keys
    if unexpected or not adapter_state:
        raise ConfigError(f"the stage-1 adapter does not fit the classifier: {unexpected[:5]}")
    return wrapped


def _is_sequence_classifier(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


# ---- saving and loading ---------------------------------------------------------------------------


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a peft adapter (its ``adapter_config.json``)."""
    return (Path(folder) / ADAPTER_CONFIG_NAME).is_file()


def save_base_and_adapter(model: nn.Module, folder: Path, adapter_folder: str) -> None:
    """Save a wrapped model as its plain base model in ``folder`` (adapter layers left out) and its
    adapter in ``folder / adapter_folder``."""
    base = model.get_base_model()
    base.save_pretrained(folder, state_dict=weights_without_adapter(base))
    model.save_pretrained(folder / adapter_folder)


def load_adapter(base: nn.Module, folder: str | os.PathLike, trainable: bool = True) -> nn.Module:
    """``base`` wrapped with the adapter saved in ``folder`` (trainable unless told otherwise)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, folder, is_trainable=trainable)


def load_adapter_model(folder: str | os.PathLike, trainable: bool = False) -> nn.Module:
    """A standalone adapter folder loaded onto the encoder it was trained on (its
    ``base_model_name_or_path``, read with ``AutoModel``)."""
    from peft import PeftConfig
    from transformers import AutoModel

    base = AutoModel.from_pretrained(PeftConfig.from_pretrained(folder).base_model_name_or_path)
    return load_adapter(base, folder, trainable=trainable)


def load_adapter_weights(model: nn.Module, folder: str | os.PathLike) -> None:
    """Load the adapter weights saved in ``folder`` into a wrapped model in place (to resume training)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = Path(folder) / ADAPTER_WEIGHTS_NAME
    if not weights.is_file():
        raise ConfigError(
            f"{Path(folder).parent} holds no LoRA adapter ({Path(folder).name}/{ADAPTER_WEIGHTS_NAME})"
        )
    set_peft_model_state_dict(model, load_file(str(weights)))
