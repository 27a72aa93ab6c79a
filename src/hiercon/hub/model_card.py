"""Model cards for hiercon classifiers, rendered from ``model_cards/hiercon_classifier.md``.

The card's YAML front matter is a :class:`huggingface_hub.ModelCardData` with a ``model-index`` of
:class:`huggingface_hub.EvalResult` entries; the body describes both training stages, the data,
the taxonomy, the evaluation and the losses' citations. Cards never hold credentials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hiercon.errors import ConfigError
from hiercon.metrics.hierarchical import level_names
from hiercon.metrics.inputs import as_multi_hot
from hiercon.metrics.report import markdown_table, per_label_markdown

# ``hiercon/model_cards`` links to the repository's ``model_cards/`` folder (where the templates are
# edited); wheels hold the templates themselves there, as package data.
TEMPLATES = Path(__file__).resolve().parents[1] / "model_cards"
TEMPLATE_PATH = TEMPLATES / "hiercon_classifier.md"
ENCODER_TEMPLATE_PATH = TEMPLATES / "hiercon_encoder.md"
TAGS = ["hiercon", "multi-label", "contrastive-learning", "hierarchical-classification"]
PIPELINE_TAGS = {"text-classification": "text classification", "image-classification": "image classification"}
HEADLINE_METRICS = {
    "micro_f1": "Micro F1",
    "macro_f1": "Macro F1",
    "map": "mAP",
    "hierarchical_f1": "Hierarchical F1",
}
VERSIONED_PACKAGES = (
    "hiercon",
    "transformers",
    "torch",
    "datasets",
    "huggingface_hub",
    "peft",
    "scikit-learn",
)
TREE_EXCERPT_LINES = 25


@dataclass
class ModelCardInfo:
    """Everything a hiercon classifier's card reports.

    ``stage1`` is the classifier config's ``hiercon["stage1"]`` record (``loss``, ``loss_config``,
    ``citation``, ``pooling``, ``peft``...); ``stage1_hyperparameters`` and ``stage2`` hold training
    settings (``stage2["loss"]`` names the head's loss). ``dataset_statistics`` maps a split name to
    :func:`dataset_statistics`. ``metrics`` are the ``eval_split`` results (e.g. of
    :func:`hiercon.metrics.multilabel_metrics` merged with the hierarchical ones), ``per_label`` the
    rows of :func:`hiercon.metrics.per_label_report`. ``plots`` maps a caption to an image path
    relative to the model folder; ``comparison`` maps a system name to its metrics.
    """

    model_id: str
    base_model: str
    label_names: Sequence[str]
    pipeline_tag: str = "text-classification"
    model_name: str | None = None
    thresholds: Sequence[float] | None = None
    taxonomy: Any = None
    label_space: str = "nodes"
    stage1: Mapping[str, Any] = field(default_factory=dict)
    stage1_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    stage2: Mapping[str, Any] = field(default_factory=dict)
    datasets: Sequence[str] = ()
    dataset_name: str | None = None
    dataset_statistics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    eval_split: str = "test"
    per_label: Sequence[Mapping[str, Any]] = ()
    comparison: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    citations: Sequence[str] = ()
    license: str = "apache-2.0"
    language: Sequence[str] | None = None
    example_input: str = "I am so happy for you, thank you!"
    plots: Mapping[str, str] = field(default_factory=dict)
    architecture: str = "AutoModelForSequenceClassification"


def dataset_statistics(labels: Any, label_names: Sequence[str], top: int = 5) -> dict[str, Any]:
    """Statistics of one split from its multi-hot label matrix: ``examples``, ``label_cardinality``
    (mean labels per example), ``labels_used`` and the ``top`` most frequent labels with counts."""
    matrix = as_multi_hot(labels, "labels")
    if matrix.shape[1] != len(label_names):
        raise ConfigError(f"labels have {matrix.shape[1]} columns for {len(label_names)} label_names")
    counts = matrix.sum(axis=0)
    order = sorted(range(len(label_names)), key=lambda column: (-counts[column], column))[:top]
    return {
        "examples": int(matrix.shape[0]),
        "label_cardinality": float(matrix.sum(axis=1).mean()) if matrix.shape[0] else 0.0,
        "labels_used": int((counts > 0).sum()),
        "top_labels": [(label_names[column], int(counts[column])) for column in order if counts[column] > 0],
    }


def info_from_config(config: Any, **fields: Any) -> ModelCardInfo:
    """A :class:`ModelCardInfo` whose labels, thresholds, taxonomy, label space, stage-1 record, base
    model, pipeline tag and architecture come from a hiercon classifier config (``fields`` override)."""
    record = dict(getattr(config, "hiercon", None) or {})
    id2label = {int(key): value for key, value in (getattr(config, "id2label", None) or {}).items()}
    architectures = getattr(config, "architectures", None) or []
    is_image = any("ImageClassification" in name for name in architectures)
    stage1 = dict(record.get("stage1") or {})
    derived = {
        "label_names": [id2label[i] for i in sorted(id2label)],
        "thresholds": record.get("thresholds"),
        "taxonomy": record.get("taxonomy"),
        "label_space": record.get("label_space", "leaves"),
        "stage1": stage1,
        "base_model": stage1.get("base_model") or getattr(config, "_name_or_path", "") or "unknown",
        "pipeline_tag": "image-classification" if is_image else "text-classification",
        "architecture": "AutoModelForImageClassification"
        if is_image
        else "AutoModelForSequenceClassification",
    }
    derived.update(fields)
    if "model_id" not in derived:
        raise ConfigError(
            "info_from_config needs model_id= (the Hub repository id or folder the card describes)"
        )
    return ModelCardInfo(**derived)


def _settings_table(settings: Mapping[str, Any]) -> str:
    rows = [(key, value) for key, value in settings.items() if value not in (None, "", {}, [])]
    return markdown_table(("setting", "value"), rows) or "Not recorded.\n"


def _stage1_settings(info: ModelCardInfo) -> dict[str, Any]:
    stage1 = {key: value for key, value in info.stage1.items() if key not in ("citation", "base_model")}
    loss_config = stage1.pop("loss_config", None) or {}
    return {
        **stage1,
        **{f"loss.{key}": value for key, value in loss_config.items()},
        **info.stage1_hyperparameters,
    }


def _dataset_tables(info: ModelCardInfo) -> tuple[str, str]:
    statistics = info.dataset_statistics
    summary = markdown_table(
        ("split", "examples", "labels per example", "labels used"),
        [(split, s["examples"], s["label_cardinality"], s["labels_used"]) for split, s in statistics.items()],
    )
    top = markdown_table(
        ("split", "most frequent labels (count)"),
        [
            (split, ", ".join(f"{label} ({count})" for label, count in s.get("top_labels", [])))
            for split, s in statistics.items()
        ],
    )
    return summary or "Statistics not recorded.\n", top


def _load_taxonomy(taxonomy: Any) -> Any:
    if taxonomy is None or hasattr(taxonomy, "ancestor_matrix"):
        return taxonomy
    from hiercon.taxonomy import LabelTaxonomy

    return LabelTaxonomy.from_dict(taxonomy)


def taxonomy_summary(taxonomy: Any) -> str:
    """Levels with their label counts and example labels, and the first lines of the tree."""
    if taxonomy is None:
        return ""
    levels = np.asarray(taxonomy.levels)
    rows = []
    for depth, name in enumerate(level_names(taxonomy)):
        labels = [label for label, level in zip(taxonomy.labels, levels) if level == depth]
        examples = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
        rows.append((depth, name, len(labels), examples))
    tree = taxonomy.tree_str().splitlines()
    excerpt = tree[:TREE_EXCERPT_LINES] + (
        [f"... ({len(tree) - TREE_EXCERPT_LINES} more lines)"] if len(tree) > TREE_EXCERPT_LINES else []
    )
    return (
        f"{taxonomy.num_labels} labels in {taxonomy.num_levels} levels, {len(taxonomy.leaves)} leaves.\n\n"
        + markdown_table(("depth", "level", "labels", "examples"), rows)
        + "\n```text\n"
        + "\n".join(excerpt)
        + "\n```\n"
    )


def _metrics_table(metrics: Mapping[str, float]) -> str:
    rows = [(HEADLINE_METRICS.get(key, key), value) for key, value in metrics.items() if "/" not in key]
    headline_order = list(HEADLINE_METRICS.values())
    rows.sort(
        key=lambda row: (
            headline_order.index(row[0]) if row[0] in headline_order else len(headline_order),
            row[0],
        )
    )
    return markdown_table(("metric", "value"), rows) or "No evaluation recorded.\n"


def _comparison_table(comparison: Mapping[str, Mapping[str, float]]) -> str:
    if not comparison:
        return ""
    keys = [key for key in HEADLINE_METRICS if any(key in values for values in comparison.values())]
    rows = [(name, *(values.get(key, "") for key in keys)) for name, values in comparison.items()]
    return markdown_table(("model", *(HEADLINE_METRICS[key] for key in keys)), rows)


def _per_label_rows(info: ModelCardInfo) -> list[Mapping[str, Any]]:
    if info.per_label:
        return list(info.per_label)
    thresholds = list(info.thresholds) if info.thresholds is not None else [0.5] * len(info.label_names)
    return [{"label": label, "threshold": float(value)} for label, value in zip(info.label_names, thresholds)]


def framework_versions() -> dict[str, str]:
    """Installed versions of the packages that trained the model."""
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _citations(info: ModelCardInfo) -> str:
    entries = [info.stage1.get("citation") or "", *info.citations]
    unique = list(dict.fromkeys(entry.strip() for entry in entries if entry and entry.strip()))
    return "\n\n".join(unique)


def _eval_results(info: ModelCardInfo, dataset_type: str, dataset_name: str) -> list[EvalResult]:
    return [
        EvalResult(
            task_type=info.pipeline_tag,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=info.eval_split,
            metric_type=key,
            metric_name=name,
            metric_value=round(float(info.metrics[key]), 6),
        )
        for key, name in HEADLINE_METRICS.items()
        if key in info.metrics and math.isfinite(float(info.metrics[key]))
    ]


def _check(info: ModelCardInfo) -> None:
    if info.pipeline_tag not in PIPELINE_TAGS:
        raise ConfigError(f"pipeline_tag must be one of {sorted(PIPELINE_TAGS)}, got {info.pipeline_tag!r}")
    if info.thresholds is not None and len(info.thresholds) != len(info.label_names):
        raise ConfigError(f"{len(info.thresholds)} thresholds for {len(info.label_names)} labels")
    if not info.label_names:
        raise ConfigError("ModelCardInfo.label_names is empty")


def card_data(info: ModelCardInfo) -> ModelCardData:
    """The card's YAML metadata, with the headline metrics as a ``model-index``."""
    dataset_name = info.dataset_name or (info.datasets[0] if info.datasets else "custom")
    dataset_type = info.datasets[0] if info.datasets else dataset_name.lower().replace(" ", "_")
    return ModelCardData(
        model_name=info.model_name or info.model_id.split("/")[-1],
        language=list(info.language) if info.language else None,
        license=info.license,
        library_name="transformers",
        pipeline_tag=info.pipeline_tag,
        tags=list(TAGS),
        base_model=info.base_model,
        datasets=list(info.datasets) or None,
        metrics=[key for key in HEADLINE_METRICS if key in info.metrics] or None,
        eval_results=_eval_results(info, dataset_type, dataset_name) or None,
    )


def build_model_card(info: ModelCardInfo, template_path: str | Path | None = None) -> ModelCard:
    """Render the card of a hiercon classifier from ``info`` (template: ``model_cards/hiercon_classifier.md``)."""
    _check(info)
    template = Path(template_path) if template_path is not None else TEMPLATE_PATH
    if not template.is_file():
        raise ConfigError(f"model card template {template} not found; pass template_path=")
    data = card_data(info)
    dataset_table, top_labels_table = _dataset_tables(info)
    return ModelCard.from_template(
        data,
        template_path=str(template),
        model_name=data.model_name,
        model_id=info.model_id,
        base_model=info.base_model,
        pipeline_tag=info.pipeline_tag,
        task_description=PIPELINE_TAGS[info.pipeline_tag],
        architecture=info.architecture,
        num_labels=len(info.label_names),
        example_input=json.dumps(info.example_input),
        stage1_table=_settings_table(_stage1_settings(info)),
        stage2_table=_settings_table(dict(info.stage2)),
        dataset_list=", ".join(info.datasets) or (info.dataset_name or "not recorded"),
        dataset_table=dataset_table,
        top_labels_table=top_labels_table,
        taxonomy_summary=taxonomy_summary(_load_taxonomy(info.taxonomy)),
        label_space=info.label_space,
        eval_split=info.eval_split,
        metrics_table=_metrics_table(info.metrics),
        comparison_table=_comparison_table(info.comparison),
        per_label_table=per_label_markdown(_per_label_rows(info)),
        plots=list(info.plots.items()),
        versions_table=markdown_table(("package", "version"), list(framework_versions().items())),
        citations=_citations(info),
    )


def save_model_card(info: ModelCardInfo | ModelCard, folder: str | Path) -> Path:
    """Write the card (built from ``info`` when needed) to ``<folder>/README.md`` and return its path."""
    card = info if isinstance(info, ModelCard) else build_model_card(info)
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


def build_encoder_card(
    model_id: str,
    classifier_repo_id: str,
    stage1: Mapping[str, Any],
    example_input: str = "I am so happy for you, thank you!",
    template_path: str | Path | None = None,
) -> ModelCard:
    """The card of a published stage-1 encoder (a feature-extraction repository) from the
    classifier's ``config.hiercon["stage1"]`` record."""
    template = Path(template_path) if template_path is not None else ENCODER_TEMPLATE_PATH
    if not template.is_file():
        raise ConfigError(f"model card template {template} not found; pass template_path=")
    base_model = stage1.get("base_model") or None
    data = ModelCardData(
        model_name=model_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag="feature-extraction",
        tags=[*TAGS, "stage1-encoder"],
        base_model=base_model,
    )
    settings = {
        key: value for key, value in stage1.items() if key not in ("citation", "base_model", "loss_config")
    }
    settings.update({f"loss.{key}": value for key, value in (stage1.get("loss_config") or {}).items()})
    return ModelCard.from_template(
        data,
        template_path=str(template),
        model_name=data.model_name,
        model_id=model_id,
        classifier_repo_id=classifier_repo_id,
        base_model=base_model or "",
        loss=stage1.get("loss", "unknown"),
        pooling=stage1.get("pooling", "mean"),
        example_input=json.dumps(example_input),
        settings_table=_settings_table(settings),
        citation=(stage1.get("citation") or "").strip(),
    )
