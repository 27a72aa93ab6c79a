"""Models: the stage-1 :class:`ContrastiveModel` and the stage-2 classifier builder."""

from __future__ import annotations

import importlib
from typing import Any

from hiercon.modeling.contrastive_model import ContrastiveModel, ContrastiveOutput, ProjectionHead
from hiercon.modeling.views import AugmentationConfig, AugmentedViews, DropoutViews

__all__ = [
    "AugmentationConfig",
    "AugmentedViews",
    "ContrastiveModel",
    "ContrastiveOutput",
    "DropoutViews",
    "ProjectionHead",
    "build_classifier",
]


def __getattr__(name: str) -> Any:
    # The classifier builder lives in its own module, loaded on first use.
    if name == "build_classifier":
        try:
            module = importlib.import_module("hiercon.modeling.classifier")
        except ModuleNotFoundError as error:
            if error.name != "hiercon.modeling.classifier":
                raise
            raise AttributeError(
                "hiercon.modeling.build_classifier is not available in this installation"
            ) from error
        return module.build_classifier
    raise AttributeError(f"module 'hiercon.modeling' has no attribute {name!r}")
