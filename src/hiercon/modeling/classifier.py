"""Stage 2: turn a stage-1 encoder into a plain ``AutoModelFor*Classification`` multi-label classifier.

The classifier is a stock transformers model (loadable by ``pipeline`` without remote code). What
hiercon adds (taxonomy, label space, thresholds, stage-1 and stage-2 provenance) is a
:class:`~hiercon.record.HierconRecord` stored in ``config.hiercon``; :func:`build_classifier`
writes the first one, :class:`~hiercon.training.ClassifierTrainer` adds ``stage2`` and thresholds.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from hiercon.errors import ConfigError
from hiercon.modality import IMAGE, TEXT, input_modality
from hiercon.modeling.adapters import (
    adapter_record,
    base_model_of,
    carry_adapter,
    is_adapter_folder,
    is_peft,
    load_adapter_model,
    merge_lora,
    weights_without_adapter,
)
from hiercon.modeling.adapters import apply_lora as apply_lora
from hiercon.modeling.adapters import head_module_names as head_module_names
from hiercon.modeling.pooling import resolve_pooling, start_pooler
from hiercon.record import HierconRecord
from hiercon.record import read_hiercon_config as read_hiercon_config
from hiercon.record import read_labels as read_labels
from hiercon.record import read_taxonomy as read_taxonomy
from hiercon.record import set_stage2 as set_stage2
from hiercon.record import set_thresholds as set_thresholds

if TYPE_CHECKING:
    from hiercon.taxonomy import LabelTaxonomy

TASKS = ("auto", TEXT, IMAGE)
MULTI_LABEL = "multi_label_classification"
_AUTO_CLASSES = {TEXT: AutoModelForSequenceClassification, IMAGE: AutoModelForImageClassification}
_CLS_TOKEN_MODES = frozenset({"cls", "pooler"})


# ---- the encoder -----------------------------------------------------------------------------------


def _load_stage1(source: str | Path) -> nn.Module:
    """A ContrastiveModel folder, a peft adapter folder or a plain encoder folder (or Hub id)."""
    from hiercon.modeling.contrastive_model import CONTRASTIVE_CONFIG_NAME, ContrastiveModel

    folder = Path(source)
    if (folder / CONTRASTIVE_CONFIG_NAME).is_file():
        return ContrastiveModel.from_pretrained(folder)
    if is_adapter_folder(folder):
        return load_adapter_model(folder)
    try:
        return AutoModel.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load an encoder from {str(source)!r}: {error}") from None


def unwrap_stage1(model: object) -> tuple[nn.Module, dict[str, Any]]:
    """``(encoder, stage-1 provenance)`` of a ContrastiveModel, a transformers encoder or a folder.

    The provenance holds what the stage-1 model knows about itself (``stage1_info()`` of a
    ContrastiveModel: loss, pooling, base model, peft); a bare encoder gives an empty record.
    """
    if isinstance(model, (str, Path)):
        model = _load_stage1(model)
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, PreTrainedModel) or (isinstance(encoder, nn.Module) and is_peft(encoder)):
        info = (
            model.stage1_info()
            if hasattr(model, "stage1_info")
            else {"pooling": getattr(model, "pooling", None)}
        )
        return encoder, {key: value for key, value in info.items() if value is not None}
    if isinstance(model, nn.Module) and hasattr(model, "config"):
        return model, {}
    raise ConfigError(
        f"build_classifier needs a ContrastiveModel, a transformers encoder or a model folder, "
        f"got {type(model).__name__}"
    )


# ---- label space -----------------------------------------------------------------------------------


def resolve_labels(
    taxonomy: LabelTaxonomy | None, label_space: str, labels: Sequence[str] | None
) -> tuple[list[str], str]:
    """The classifier's label names and the label space.

    A flat label list has no taxonomy; its labels count as leaves (``label_space="leaves"``).
    """
    if taxonomy is not None and labels is not None:
        raise ConfigError("give either a taxonomy or a flat list of labels, not both")
    if taxonomy is None:
        if not labels:
            raise ConfigError("build_classifier needs a taxonomy or a non-empty list of labels")
        names = [str(label) for label in labels]
        if len(set(names)) != len(names):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            raise ConfigError(f"labels must be unique; repeated: {duplicates}")
        return names, "leaves"
    if label_space == "nodes":
        return list(taxonomy.labels), "nodes"
    if label_space == "leaves":
        return list(taxonomy.leaves), "leaves"
    raise ConfigError(f"label_space must be 'nodes' or 'leaves', got {label_space!r}")


# ---- building ----------------------------------------------------------------------------------------


def _new_classifier(encoder_config: PretrainedConfig, task: str, names: list[str]) -> PreTrainedModel:
    """A freshly initialised multi-label classifier with the encoder's architecture and these labels."""
    config = copy.deepcopy(encoder_config)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    config.problem_type = MULTI_LABEL
    config.architectures = None
    try:
        return _AUTO_CLASSES[task].from_config(config)
    except ValueError as error:
        raise ConfigError(
            f"no {task} classification head for model type {config.model_type!r}: {error}"
        ) from None


def _copy_encoder_weights(classifier: PreTrainedModel, encoder_state: dict[str, torch.Tensor]) -> list[str]:
    """Load the encoder's weights into the classifier's base model (exactly; a missing pooler is allowed).

    Returns the pooler weights the encoder lacked (the classifier's pooler keeps its fresh values there).
    """
    result = classifier.base_model.load_state_dict(encoder_state, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("pooler.")]
    unexpected = [key for key in result.unexpected_keys if not key.startswith("pooler.")]
    if missing or unexpected:
        raise ConfigError(
            f"the encoder's weights do not fit {type(classifier).__name__}'s base model: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return [key for key in result.missing_keys if key.startswith("pooler.")]


def _start_head_pooler(classifier: PreTrainedModel, stage1_pooling: str | None, missing: list[str]) -> None:
    """Make the pooler that the head reads pass on what stage 1 trained.

    A pooler that stage 1 pooled through is kept. Otherwise a pooler that the encoder lacked or
    never trained (:func:`~hiercon.modeling.pooling.untrained_pooler`) starts as the identity, so
    the head reads ``tanh`` of the first-token state instead of a near-constant or random feature.
    """
    if stage1_pooling == "pooler" and not missing:
        return
    if start_pooler(classifier.base_model, "auto", missing) is None and missing:
        warnings.warn(
            f"the encoder has no pooler, so the classifier's pooler ({missing}) starts at random; "
            "a linear probe would read untrained features",
            UserWarning,
            stacklevel=3,
        )


def _pooling_record(encoder: PreTrainedModel, stage1_pooling: str | None) -> dict[str, Any]:
    """Stage-1 pooling vs the features the classification head reads; warn when they differ."""
    head_pooling = resolve_pooling("auto", encoder)
    if stage1_pooling == "auto":
        stage1_pooling = head_pooling
    mismatch = stage1_pooling is not None and not (
        stage1_pooling == head_pooling or {stage1_pooling, head_pooling} <= _CLS_TOKEN_MODES
    )
    if mismatch:
        warnings.warn(
            f"stage 1 pooled with {stage1_pooling!r} but the {encoder.config.model_type} classification head "
            f"reads {head_pooling!r} features: the head sees features the contrastive loss never shaped; "
            "pool with 'auto' (model.pooling: auto) to train what the head reads",
            UserWarning,
            stacklevel=3,
        )
    return {"pooling": stage1_pooling, "head_pooling": head_pooling, "pooling_mismatch": mismatch}


def _peft_record(
    encoder: nn.Module, merge_adapter: bool, known: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The stage-1 peft config with what stage 2 did to the adapter: ``"adapter": "merged"`` or ``"kept"``.

    ``known`` is the record of a stage-1 model that may have merged its adapter already.
    """
    if is_peft(encoder):
        return {**dict(known or adapter_record(encoder)), "adapter": "merged" if merge_adapter else "kept"}
    return {**dict(known), "adapter": "merged"} if known else None


def build_classifier(
    model: object,
    taxonomy: LabelTaxonomy | None = None,
    label_space: str = "nodes",
    labels: Sequence[str] | None = None,
    task: str = "auto",
    problem_type: str = MULTI_LABEL,
    merge_adapter: bool = True,
    stage1: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A multi-label ``AutoModelFor{Sequence,Image}Classification`` whose base model is the stage-1 encoder.

    Args:
        model: a ContrastiveModel (its ``.encoder`` and ``.pooling`` are used), a transformers base
            encoder (``AutoModel``), possibly carrying a peft adapter, or a folder holding one.
        taxonomy: the label taxonomy; its nodes (``label_space="nodes"``) or leaves (``"leaves"``)
            become the classes. Without a taxonomy, ``labels`` gives a flat list of class names.
        task: ``"text"``, ``"image"`` or ``"auto"`` (the encoder's :func:`~hiercon.modality.input_modality`:
            image when its main input is ``pixel_values``).
        problem_type: only ``"multi_label_classification"`` (sigmoid per label) is supported.
        merge_adapter: when the encoder carries a peft adapter, merge it into the weights (default)
            or keep it, so that stage 2 goes on training it (the result is then a ``PeftModel``).
        stage1: provenance recorded in ``config.hiercon["stage1"]`` (``loss``, ``loss_config``,
            ``citation``, ...); ``pooling``, ``base_model`` and ``peft`` are filled in here.

    The base model receives an exact copy of the encoder's weights, so it computes the same hidden
    states; the head is freshly initialised. Thresholds start at 0.5.
    """
    if problem_type != MULTI_LABEL:
        raise ConfigError(
            f"build_classifier builds multi-label classifiers only, got problem_type={problem_type!r}"
        )
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    names, space = resolve_labels(taxonomy, label_space, labels)
    encoder, known = unwrap_stage1(model)
    provenance = {**known, **dict(stage1 or {})}
    base = base_model_of(encoder)
    task = input_modality(encoder) if task == "auto" else task
    peft_record = _peft_record(encoder, merge_adapter, provenance.get("peft"))
    if is_peft(encoder) and merge_adapter:
        encoder_state = merge_lora(encoder).state_dict()
    else:
        encoder_state = weights_without_adapter(base)
    classifier = _new_classifier(base.config, task, names)
    missing_pooler = _copy_encoder_weights(classifier, encoder_state)
    stage1_pooling = provenance.get("pooling")
    if stage1_pooling == "auto":
        stage1_pooling = resolve_pooling("auto", base)
    _start_head_pooler(classifier, stage1_pooling, missing_pooler)
    reference = next(base.parameters())
    classifier.to(device=reference.device, dtype=reference.dtype)

    record = {
        "loss": None,
        "loss_config": {},
        "citation": "",
        "base_model": getattr(base.config, "_name_or_path", "") or "",
        **provenance,
        **_pooling_record(base, provenance.get("pooling")),
        "peft": peft_record,
    }
    HierconRecord(tuple(names), taxonomy, space, stage1=record).to_config(classifier.config)
    if is_peft(encoder) and not merge_adapter:
        return carry_adapter(classifier, encoder)
    return classifier


def load_classifier(folder: str | Path, **kwargs: Any) -> PreTrainedModel:
    """Load a saved classifier with the Auto class that matches its architecture (text or image)."""
    return _AUTO_CLASSES[input_modality(AutoConfig.from_pretrained(folder))].from_pretrained(folder, **kwargs)
