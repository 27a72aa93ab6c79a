"""Whether a model, a model config or a recipe's data section deals in text or in images.

The one place that decides it, so that data loading, processors, stage 1, the classifier's Auto
class, inference and the model card agree.
"""

from __future__ import annotations

from typing import Any, Literal

Modality = Literal["text", "image"]
TEXT: Modality = "text"
IMAGE: Modality = "image"
IMAGE_INPUT = "pixel_values"


def input_modality(source: Any) -> Modality:
    """``"image"`` or ``"text"`` for any of:

    - data settings with an ``image_column`` (a recipe's ``data`` section): image when it is set;
    - a model, possibly peft-wrapped: image when its main input is ``pixel_values``;
    - a model config: image when an architecture is ``*ImageClassification`` or it describes image
      inputs (``image_size`` and ``num_channels``, as vision encoder configs do).
    """
    if hasattr(source, "image_column"):
        return IMAGE if source.image_column else TEXT
    base = source.get_base_model() if hasattr(source, "get_base_model") else source
    main_input = getattr(base, "main_input_name", None)
    if isinstance(main_input, str):
        return IMAGE if main_input == IMAGE_INPUT else TEXT
    config = getattr(source, "config", source)
    architectures = getattr(config, "architectures", None) or []
    if any("ImageClassification" in name for name in architectures):
        return IMAGE
    if hasattr(config, "image_size") and hasattr(config, "num_channels"):
        return IMAGE
    return TEXT
