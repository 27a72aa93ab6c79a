"""Models: the stage-1 :class:`ContrastiveModel` and the stage-2 classifier builder."""

from __future__ import annotations

from hiercon._lazy import lazy_exports
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

__getattr__, __dir__ = lazy_exports(globals(), {"build_classifier": "hiercon.modeling.classifier"})
