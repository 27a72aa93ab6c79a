"""Model cards and Hub publishing for hiercon classifiers."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ModelCardInfo": "hiercon.hub.model_card",
    "build_model_card": "hiercon.hub.model_card",
    "save_model_card": "hiercon.hub.model_card",
    "push_model_folder": "hiercon.hub.push",
    "PushError": "hiercon.hub.push",
    "PushResult": "hiercon.hub.push",
    "dataset_statistics": "hiercon.hub.model_card",
    "info_from_config": "hiercon.hub.model_card",
    "build_encoder_card": "hiercon.hub.model_card",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hiercon.hub' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
