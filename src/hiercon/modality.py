"""Whether a model, a model config or a recipe's data section deals in text or in images.

The one place that decides it, so that data loading, processors, stage-1 views and inputs, the
classifier's Auto class, the inference pipeline and the model card's pipeline tag agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Modality = Literal["text", "image"]
TEXT: Modality = "text"
IMAGE: Modality = "image"
IMAGE_INPUT = "pixel_values"
CLASSIFICATION_TASKS: dict[Modality, str] = {TEXT: "text-classification", IMAGE: "image-classification"}


def input_modality(source: Any) -> Modality:
    """``"image"`` or ``"text"`` for any of:

    - data settings with an ``image_column`` (a recipe's ``data`` section): image when it is set;
    - a model, possibly peft-wrapped: image when its main input is ``pixel_values``;
    - a model config, or a ``config.json`` read as a dict: image when an architecture is
      ``*ImageClassification`` or it describes image inputs (``image_size`` and ``num_channels``, as
      vision encoder configs do).
    """
    if hasattr(source, "image_column"):
        return IMAGE if source.image_column else TEXT
    base = source.get_base_model() if hasattr(source, "get_base_model") else source
    main_input = getattr(base, "main_input_name", None)
    if isinstance(main_input, str):
        return IMAGE if main_input == IMAGE_INPUT else TEXT
    config = getattr(source, "config", source)
    if any("ImageClassification" in name for name in _config_field(config, "architectures") or []):
        return IMAGE
    if _config_field(config, "image_size") is not None and _config_field(config, "num_channels") is not None:
        return IMAGE
    return TEXT


def _config_field(config: Any, name: str) -> Any:
    """A field of a transformers config or of a ``config.json`` dict; None when absent."""
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def classification_task(source: Any) -> str:
    """The ``transformers.pipeline`` task (and Hub pipeline tag) of a classifier over ``source``'s
    inputs: ``"image-classification"`` or ``"text-classification"``."""
    return CLASSIFICATION_TASKS[input_modality(source)]
