"""hiercon: label-aware and hierarchy-aware contrastive learning for Hugging Face transformers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hiercon._lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> module that defines it. Imported on first use so that ``import hiercon``
# stays light (no transformers import until a model or trainer is needed).
_EXPORTS: dict[str, str] = {
    "LabelTaxonomy": "hiercon.taxonomy",
    "LabelSpace": "hiercon.taxonomy",
    "LabelFormatError": "hiercon.errors",
    "ContrastiveModel": "hiercon.modeling",
    "ContrastiveTrainer": "hiercon.training",
    "ClassifierTrainer": "hiercon.training",
    "JointClassifierTrainer": "hiercon.training",
    "build_classifier": "hiercon.modeling",
    "MultiLabelPredictor": "hiercon.inference",
    "HierconError": "hiercon.errors",
    "TaxonomyError": "hiercon.errors",
    "UnknownLabelError": "hiercon.errors",
    "LossInputError": "hiercon.errors",
    "ConfigError": "hiercon.errors",
}

__all__ = [
    "ClassifierTrainer",
    "ConfigError",
    "ContrastiveModel",
    "ContrastiveTrainer",
    "HierconError",
    "JointClassifierTrainer",
    "LabelFormatError",
    "LabelSpace",
    "LabelTaxonomy",
    "LossInputError",
    "MultiLabelPredictor",
    "TaxonomyError",
    "UnknownLabelError",
    "__version__",
    "build_classifier",
]

if TYPE_CHECKING:  # pragma: no cover
    from hiercon.errors import (
        ConfigError,
        HierconError,
        LabelFormatError,
        LossInputError,
        TaxonomyError,
        UnknownLabelError,
    )
    from hiercon.inference import MultiLabelPredictor
    from hiercon.modeling import ContrastiveModel, build_classifier
    from hiercon.taxonomy import LabelSpace, LabelTaxonomy
    from hiercon.training import ClassifierTrainer, ContrastiveTrainer, JointClassifierTrainer

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
