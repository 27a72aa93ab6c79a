"""``HierconCardData``: everything a hiercon model card reports.

The trainers fill it during training (a callback records the losses, the taxonomy, the labels, the
training settings, the dataset sizes and the evaluation metrics), the recipe adds its run record,
and :func:`hiercon.hub.model_card.build_model_card` renders it with ``huggingface_hub.ModelCard``.
As a ``huggingface_hub.CardData`` its ``to_dict``/``to_yaml`` give the card's YAML metadata: a
``ModelCardData`` with a ``model-index`` of the headline metrics, ``loss:<name>`` tags and a
``hiercon`` block naming the labels and losses.

Two kinds of card share it: ``"classifier"`` (a multi-label ``AutoModelFor*Classification``) and
``"encoder"`` (a stage-1 encoder, a feature-extraction model).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import CardData, EvalResult, ModelCardData

from hiercon.errors import ConfigError
from hiercon.hub.model_ids import hub_model_id
from hiercon.modality import classification_task
from hiercon.record import HierconRecord
from hiercon.taxonomy.graph import LabelTaxonomy

CARD_KINDS = ("classifier", "encoder")
TAGS = ["hiercon", "multi-label", "contrastive-learning", "hierarchical-classification"]
ENCODER_TAG = "stage1-encoder"
PIPELINE_TAGS = {
    "text-classification": "text classification",
    "image-classification": "image classification",
    "feature-extraction": "feature extraction",
}
ARCHITECTURES = {
    "text-classification": "AutoModelForSequenceClassification",
    "image-classification": "AutoModelForImageClassification",
    "feature-extraction": "AutoModel",
}
HEADLINE_METRICS = {
    "micro_f1": "Micro F1 (fine labels)",
    "macro_f1": "Macro F1 (fine labels)",
    "map": "mAP",
    "hierarchical_f1": "Hierarchical F1",
}
# Labels named in the YAML metadata at most (the card's body lists them all in the per-label table).
YAML_LABEL_LIMIT = 1000
DEFAULT_EXAMPLE = "I am so happy for you, thank you!"


@dataclass
class HierconCardData(CardData):
    """What a hiercon model card reports.

    Args:
        model_id: the Hub repository id (or folder name) the card describes.
        kind: ``"classifier"`` or ``"encoder"``.
        base_model: the model training started from: a Hub id, or a local folder (mapped to the
            Hub id of a packaged model, else left out of the card).
        label_names: the labels in label-id order.
        pipeline_tag: ``"text-classification"``, ``"image-classification"`` or (encoders)
            ``"feature-extraction"``.
        thresholds: per-label decision thresholds (classifiers).
        threshold_rule: how the thresholds were chosen (``config.hiercon["threshold_rule"]``), or None.
        taxonomy: a ``LabelTaxonomy`` or its ``to_dict()`` form, or None.
        label_space: ``"nodes"`` or ``"leaves"``.
        stage1: the stage-1 record (``loss``, ``loss_config``, ``citation``, ``pooling``, ``peft``...);
            ``stage1_hyperparameters`` the stage-1 training settings.
        stage2: the stage-2 record (``loss``, ``loss_config``, ``consistency_weight``, ``citation``,
            ``freeze_encoder``, ``peft``); ``stage2_hyperparameters`` the stage-2 training settings.
        datasets: Hub dataset ids; ``dataset_name`` a readable name.
        dataset_statistics: split name -> :func:`~hiercon.hub.model_card.dataset_statistics` (or
            at least ``{"examples": n}``).
        metrics: the ``eval_split`` results; ``per_label`` rows of
            :func:`hiercon.metrics.per_label_report`; ``comparison`` a system name -> its metrics.
        training_logs: rows of ``epoch``, ``step``, ``training_loss``, ``validation_loss``...
        citations: BibTeX entries besides the losses' own.
        plots: caption -> image path relative to the model folder.
        classifier_repo_id: for an encoder card, the classifier built on it.
    """

    model_id: str | None = None
    kind: str = "classifier"
    base_model: str | None = None
    label_names: list[str] = field(default_factory=list)
    pipeline_tag: str = "text-classification"
    model_name: str | None = None
    thresholds: list[float] | None = None
    threshold_rule: dict[str, Any] | None = None
    taxonomy: Any = None
    label_space: str = "leaves"
    stage1: dict[str, Any] = field(default_factory=dict)
    stage1_hyperparameters: dict[str, Any] = field(default_factory=dict)
    stage2: dict[str, Any] = field(default_factory=dict)
    stage2_hyperparameters: dict[str, Any] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    dataset_name: str | None = None
    dataset_statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    eval_split: str = "test"
    per_label: list[Mapping[str, Any]] = field(default_factory=list)
    comparison: dict[str, Mapping[str, float]] = field(default_factory=dict)
    training_logs: list[dict[str, Any]] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    license: str | None = "apache-2.0"
    language: list[str] | None = None
    tags: list[str] = field(default_factory=list)
    example_input: str = DEFAULT_EXAMPLE
    plots: dict[str, str] = field(default_factory=dict)
    classifier_repo_id: str | None = None

    # ---- filling ---------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Any, **fields: Any) -> HierconCardData:
        """The card data of a classifier config (or ``config.json`` dict): labels, thresholds, taxonomy,
        label space, stage records, base model and pipeline tag from its :class:`HierconRecord`;
        ``fields`` override them."""
        return cls(**{**record_fields(HierconRecord.from_config(config), config), **fields})

    @classmethod
    def for_encoder(
        cls, stage1: Mapping[str, Any], model_id: str | None = None, **fields: Any
    ) -> HierconCardData:
        """The card data of a stage-1 encoder from its stage-1 record (a classifier's ``stage1``)."""
        return cls(
            model_id=model_id,
            kind="encoder",
            pipeline_tag="feature-extraction",
            base_model=stage1.get("base_model") or None,
            stage1=dict(stage1),
            **fields,
        )

    def set_record(self, record: HierconRecord, config: Any = None) -> None:
        """Take labels, thresholds, taxonomy, label space and stage records from a classifier's record,
        and the base model and pipeline tag from its ``config``."""
        for name, value in record_fields(record, config).items():
            setattr(self, name, value)

    # ---- views -----------------------------------------------------------------------------------

    @property
    def architecture(self) -> str:
        return ARCHITECTURES.get(self.pipeline_tag, "AutoModel")

    @property
    def hub_base_model(self) -> str | None:
        """The base model's Hub id, or None for a local folder without one."""
        return hub_model_id(self.base_model)

    def label_taxonomy(self) -> LabelTaxonomy | None:
        """The taxonomy as a ``LabelTaxonomy`` (it may be given in its ``to_dict()`` form)."""
        if self.taxonomy is None or isinstance(self.taxonomy, LabelTaxonomy):
            return self.taxonomy
        return LabelTaxonomy.from_dict(self.taxonomy)

    def loss_names(self) -> list[str]:
        """The losses used in training, stage 1 first."""
        names = [self.stage1.get("loss"), self.stage2.get("loss") if self.kind == "classifier" else None]
        return [str(name) for name in names if name]

    def all_citations(self) -> list[str]:
        """The losses' citations, then the others, each once."""
        contrastive = self.stage2.get("contrastive") or {}  # the joint mode's contrastive loss
        entries = [
            self.stage1.get("citation"),
            self.stage2.get("citation"),
            contrastive.get("citation"),
            *self.citations,
        ]
        return list(dict.fromkeys(entry.strip() for entry in entries if entry and str(entry).strip()))

    def check(self) -> None:
        """Refuse card data that cannot make a consistent card."""
        if self.kind not in CARD_KINDS:
            raise ConfigError(f"the card kind must be one of {CARD_KINDS}, got {self.kind!r}")
        if self.pipeline_tag not in PIPELINE_TAGS:
            raise ConfigError(
                f"pipeline_tag must be one of {sorted(PIPELINE_TAGS)}, got {self.pipeline_tag!r}"
            )
        if self.thresholds is not None and len(self.thresholds) != len(self.label_names):
            raise ConfigError(f"{len(self.thresholds)} thresholds for {len(self.label_names)} labels")
        if self.kind == "classifier" and not self.label_names:
            raise ConfigError("a classifier card needs label_names")

    # ---- YAML metadata ---------------------------------------------------------------------------

    def default_model_name(self) -> str:
        if self.model_id:
            return self.model_id.split("/")[-1]
        return "hiercon encoder" if self.kind == "encoder" else "hiercon multi-label classifier"

    def metadata(self) -> ModelCardData:
        """The card's YAML metadata."""
        dataset_name = self.dataset_name or (self.datasets[0] if self.datasets else "custom")
        dataset_type = self.datasets[0] if self.datasets else dataset_name.lower().replace(" ", "_")
        tags = [*TAGS, *([ENCODER_TAG] if self.kind == "encoder" else [])]
        tags += [f"loss:{name}" for name in self.loss_names()] + list(self.tags)
        return ModelCardData(
            model_name=self.model_name or self.default_model_name(),
            language=list(self.language) if self.language else None,
            license=self.license,
            library_name="transformers",
            pipeline_tag=self.pipeline_tag,
            tags=list(dict.fromkeys(tags)),
            base_model=self.hub_base_model,
            datasets=list(self.datasets) or None,
            metrics=[key for key in HEADLINE_METRICS if key in self.metrics] or None,
            eval_results=self._eval_results(dataset_type, dataset_name) or None,
            hiercon=self._hiercon_metadata(),
        )

    def _hiercon_metadata(self) -> dict[str, Any]:
        """The ``hiercon`` block: losses, labels (listed up to ``YAML_LABEL_LIMIT``), label space, taxonomy size."""
        losses = {"stage1": self.stage1.get("loss")}
        if self.kind == "classifier":
            losses["stage2"] = self.stage2.get("loss")
        metadata: dict[str, Any] = {"losses": {key: value for key, value in losses.items() if value}}
        if self.label_names:
            metadata["num_labels"] = len(self.label_names)
            if len(self.label_names) <= YAML_LABEL_LIMIT:
                metadata["labels"] = list(self.label_names)
            metadata["label_space"] = self.label_space
        taxonomy = self.label_taxonomy()
        if taxonomy is not None:
            metadata["taxonomy"] = {
                "labels": taxonomy.num_labels,
                "levels": taxonomy.num_levels,
                "leaves": len(taxonomy.leaves),
            }
        return metadata

    def _eval_results(self, dataset_type: str, dataset_name: str) -> list[EvalResult]:
        return [
            EvalResult(
                task_type=self.pipeline_tag,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=self.eval_split,
                metric_type=key,
                metric_name=name,
                metric_value=round(float(self.metrics[key]), 6),
            )
            for key, name in HEADLINE_METRICS.items()
            if key in self.metrics and math.isfinite(float(self.metrics[key]))
        ]

    def to_dict(self) -> dict[str, Any]:
        """The YAML metadata as a dict (``huggingface_hub`` writes it between the card's ``---`` lines)."""
        return self.metadata().to_dict()


def record_fields(record: HierconRecord, config: Any = None) -> dict[str, Any]:
    """Card fields from a classifier's record, and (given its config) its pipeline tag and base model."""
    fields: dict[str, Any] = {
        "label_names": list(record.labels),
        "thresholds": list(record.thresholds),
        "threshold_rule": dict(record.threshold_rule) if record.threshold_rule is not None else None,
        "taxonomy": record.taxonomy,
        "label_space": record.label_space,
        "stage1": dict(record.stage1),
        "stage2": dict(record.stage2 or {}),
    }
    if config is not None:
        fields["pipeline_tag"] = classification_task(config)
        fields["base_model"] = record.stage1.get("base_model") or name_or_path_of(config) or None
    return fields


def name_or_path_of(config: Any) -> str:
    """The model name or folder a config was loaded from (``_name_or_path``), or ``""``."""
    if isinstance(config, Mapping):
        return str(config.get("_name_or_path") or "")
    return str(getattr(config, "_name_or_path", "") or "")
