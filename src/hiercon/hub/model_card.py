"""Model cards of hiercon models, rendered from the templates in ``model_cards/``.

:func:`build_model_card` renders a :class:`~hiercon.hub.card_data.HierconCardData` with
``huggingface_hub.ModelCard``: ``hiercon_classifier.md`` for a classifier, ``hiercon_encoder.md``
for a stage-1 encoder. The YAML front matter is the card data's metadata; the body describes the
training stages, the data, the taxonomy, the evaluation and the losses' citations. Cards never hold
credentials or local paths.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import ModelCard

from hiercon.errors import ConfigError
from hiercon.hub.card_data import HEADLINE_METRICS, PIPELINE_TAGS, HierconCardData
from hiercon.hub.model_ids import without_local_paths
from hiercon.metrics.hierarchical import level_names
from hiercon.metrics.inputs import as_multi_hot
from hiercon.metrics.report import markdown_table, per_label_markdown
from hiercon.metrics.thresholds import describe_threshold_rule
from hiercon.taxonomy.graph import LabelTaxonomy

# ``hiercon/model_cards`` links to the repository's ``model_cards/`` folder (where the templates are
# edited); wheels hold the templates themselves there, as package data.
TEMPLATES = Path(__file__).resolve().parents[1] / "model_cards"
TEMPLATE_PATH = TEMPLATES / "hiercon_classifier.md"
ENCODER_TEMPLATE_PATH = TEMPLATES / "hiercon_encoder.md"
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
LABEL_LIST_LIMIT = 50
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
REDACTED = "***"
LOG_COLUMNS = {
    "epoch": "Epoch",
    "step": "Step",
    "training_loss": "Training Loss",
    "validation_loss": "Validation Loss",
}


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


def taxonomy_summary(taxonomy: LabelTaxonomy | None) -> str:
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


def framework_versions() -> dict[str, str]:
    """Installed versions of the packages that trained the model."""
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ---- tables ----------------------------------------------------------------------------------------


def _settings_table(settings: Mapping[str, Any]) -> str:
    rows = [(key, value) for key, value in settings.items() if value not in (None, "", {}, [])]
    return markdown_table(("setting", "value"), rows) or "Not recorded.\n"


NESTED_SETTINGS = ("contrastive", "head_fit")


def _nested_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    settings = {key: value for key, value in record.items() if key not in ("citation", "loss_config")}
    settings.update({f"loss.{key}": value for key, value in (record.get("loss_config") or {}).items()})
    return settings


def _stage_settings(record: Mapping[str, Any], hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's record (its loss and the loss's options first) and then its training settings."""
    settings = {key: value for key, value in record.items() if key not in ("citation", "base_model")}
    for key in NESTED_SETTINGS:  # e.g. the joint mode's contrastive loss, one row per setting
        for name, value in _nested_settings(settings.pop(key, None) or {}).items():
            settings[f"{key}.{name}"] = value
    loss_config = settings.pop("loss_config", None) or {}
    return without_local_paths(
        {
            **settings,
            **{f"loss.{key}": value for key, value in loss_config.items()},
            **hyperparameters,
        }
    )


def _dataset_tables(statistics: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    summary = markdown_table(
        ("split", "examples", "labels per example", "labels used"),
        [
            (split, s.get("examples"), s.get("label_cardinality"), s.get("labels_used"))
            for split, s in statistics.items()
        ],
    )
    top = markdown_table(
        ("split", "most frequent labels (count)"),
        [
            (split, ", ".join(f"{label} ({count})" for label, count in s["top_labels"]))
            for split, s in statistics.items()
            if s.get("top_labels")
        ],
    )
    return summary or "Statistics not recorded.\n", top


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


def _per_label_rows(data: HierconCardData) -> list[Mapping[str, Any]]:
    if data.per_label:
        return list(data.per_label)
    thresholds = list(data.thresholds) if data.thresholds is not None else [0.5] * len(data.label_names)
    return [{"label": label, "threshold": float(value)} for label, value in zip(data.label_names, thresholds)]


def _training_logs_table(logs: Sequence[Mapping[str, Any]]) -> str:
    """One row per logged step: epoch, step, training and validation loss, then other logged values."""
    columns = [key for key in LOG_COLUMNS if any(key in row for row in logs)]
    columns += sorted({key for row in logs for key in row} - set(LOG_COLUMNS))
    header = [LOG_COLUMNS.get(key, key) for key in columns]
    return markdown_table(header, [[row.get(key, "") for key in columns] for row in logs])


def _label_list(labels: Sequence[str]) -> str:
    shown = ", ".join(f"`{label}`" for label in labels[:LABEL_LIST_LIMIT])
    more = len(labels) - LABEL_LIST_LIMIT
    return shown + (f" and {more} more" if more > 0 else "")


# ---- rendering -------------------------------------------------------------------------------------


def _template_values(data: HierconCardData) -> dict[str, Any]:
    """The template variables shared by both kinds of card."""
    dataset_table, top_labels_table = _dataset_tables(data.dataset_statistics)
    return {
        "model_name": data.model_name or data.default_model_name(),
        "model_id": data.model_id or data.default_model_name(),
        "base_model": data.hub_base_model or "",
        "pipeline_tag": data.pipeline_tag,
        "task_description": PIPELINE_TAGS[data.pipeline_tag],
        "architecture": data.architecture,
        "num_labels": len(data.label_names),
        "label_list": _label_list(data.label_names),
        "label_space": data.label_space,
        "example_input": json.dumps(data.example_input),
        "stage1_table": _settings_table(_stage_settings(data.stage1, data.stage1_hyperparameters)),
        "stage2_table": _settings_table(_stage_settings(data.stage2, data.stage2_hyperparameters)),
        "loss": data.stage1.get("loss") or "not recorded",
        "pooling": data.stage1.get("pooling") or "mean",
        "classifier_repo_id": data.classifier_repo_id or "",
        "dataset_list": ", ".join(data.datasets) or (data.dataset_name or "not recorded"),
        "dataset_table": dataset_table,
        "top_labels_table": top_labels_table,
        "taxonomy_summary": taxonomy_summary(data.label_taxonomy()),
        "eval_split": data.eval_split,
        "metrics_table": _metrics_table(data.metrics),
        "has_metrics": bool(data.metrics),
        "comparison_table": _comparison_table(data.comparison),
        "training_logs_table": _training_logs_table(data.training_logs),
        "plots": list(data.plots.items()),
        "versions_table": markdown_table(("package", "version"), list(framework_versions().items())),
        "citations": "\n\n".join(data.all_citations()),
    }


def build_model_card(
    data: HierconCardData, template_path: str | Path | None = None, secrets: Iterable[str | None] = ()
) -> ModelCard:
    """Render the card of a hiercon classifier or encoder.

    ``template_path`` defaults to ``model_cards/hiercon_classifier.md`` or ``hiercon_encoder.md`` by
    the card's kind. ``secrets`` (e.g. a Hub token) and the tokens in ``HF_TOKEN`` or
    ``HUGGING_FACE_HUB_TOKEN`` are blanked out of the rendered card.
    """
    data.check()
    default = ENCODER_TEMPLATE_PATH if data.kind == "encoder" else TEMPLATE_PATH
    template = Path(template_path) if template_path is not None else default
    if not template.is_file():
        raise ConfigError(f"model card template {template} not found; pass template_path=")
    values = _template_values(data)
    if data.kind == "classifier":
        rule = describe_threshold_rule(data.threshold_rule)
        values["per_label_table"] = f"{rule}\n\n{per_label_markdown(_per_label_rows(data))}"
    card = ModelCard.from_template(data, template_path=str(template), **values)
    return ModelCard(redact(str(card), secrets))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret, and the tokens of the Hub token variables, replaced by ``***``."""
    known = {*secrets, *(os.environ.get(name) for name in TOKEN_VARIABLES)}
    for secret in sorted((value for value in known if value), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def save_model_card(
    data: HierconCardData | ModelCard, folder: str | Path, secrets: Iterable[str | None] = ()
) -> Path:
    """Write the card (rendered from ``data`` when needed) to ``<folder>/README.md`` and return its path."""
    card = data if isinstance(data, ModelCard) else build_model_card(data, secrets=secrets)
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


def build_encoder_card(
    model_id: str,
    classifier_repo_id: str,
    stage1: Mapping[str, Any],
    example_input: str | None = None,
    template_path: str | Path | None = None,
) -> ModelCard:
    """The card of a published stage-1 encoder from the classifier's ``config.hiercon["stage1"]`` record."""
    data = HierconCardData.for_encoder(stage1, model_id, classifier_repo_id=classifier_repo_id)
    if example_input is not None:
        data.example_input = example_input
    return build_model_card(data, template_path)
