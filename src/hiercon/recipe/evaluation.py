"""Scoring a trained classifier on a split: multi-label, hierarchical and per-level metrics, the
per-label table, and the markdown comparison of two runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from hiercon.metrics.classification import multilabel_metrics, per_label_report
from hiercon.metrics.hierarchical import close_under_ancestors, hierarchical_metrics, level_metrics
from hiercon.recipe.data import LABELS

COMPARED_METRICS = (
    ("micro_f1", "micro F1"),
    ("macro_f1", "macro F1"),
    ("map", "mAP"),
    ("hierarchical_f1", "hierarchical F1"),
    ("consistency_rate", "consistency"),
)


def label_columns(taxonomy: Any, label_space: str) -> list[int]:
    """Node ids (columns of the ``labels`` multi-hot) the classifier predicts, in its label order."""
    if label_space == "leaves":
        return [taxonomy.index(leaf) for leaf in taxonomy.leaves]
    return list(range(taxonomy.num_labels))


def restrict_labels(dataset: Dataset, columns: Sequence[int], split: str) -> Dataset:
    """``dataset`` with its node multi-hot ``labels`` cut to ``columns`` (no copy for all nodes)."""
    if list(columns) == list(range(len(dataset[0][LABELS]))):
        return dataset
    index = list(columns)
    return dataset.map(
        lambda batch: {LABELS: [[row[i] for i in index] for row in batch[LABELS]]},
        batched=True,
        desc=f"Selecting the {split} label space",
    )


def node_predictions(
    predictions: np.ndarray, columns: Sequence[int], taxonomy: Any, label_space: str
) -> np.ndarray:
    """Predictions in node space: leaf predictions are lifted to their ancestors; node predictions stay as
    predicted (so their consistency can be measured)."""
    nodes = np.zeros((predictions.shape[0], taxonomy.num_labels), dtype=np.int64)
    nodes[:, list(columns)] = predictions
    return close_under_ancestors(nodes, taxonomy) if label_space == "leaves" else nodes


def score_split(
    scores: np.ndarray,
    truth_nodes: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    taxonomy: Any,
    label_space: str,
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """(metrics, per-label rows) of sigmoid ``scores`` against node multi-hot truth."""
    columns = label_columns(taxonomy, label_space)
    names = [taxonomy.label(i) for i in columns]
    thresholds = np.asarray(thresholds, dtype=np.float64)
    truth = truth_nodes[:, columns]
    metrics = multilabel_metrics(truth, scores, thresholds)
    predictions = (scores >= thresholds[None, :]).astype(np.int64)
    predicted_nodes = node_predictions(predictions, columns, taxonomy, label_space)
    metrics.update(hierarchical_metrics(truth_nodes.astype(np.int64), predicted_nodes, taxonomy))
    if taxonomy.num_levels > 1:
        metrics.update(level_metrics(truth_nodes.astype(np.int64), predicted_nodes, taxonomy))
    return metrics, per_label_report(truth, scores, thresholds, names)


def truth_matrix(dataset: Dataset) -> np.ndarray:
    return np.asarray(dataset[LABELS], dtype=np.float32)


@torch.no_grad()
def embed(model: Any, dataset: Dataset, collator: Any, batch_size: int = 64) -> np.ndarray:
    """Stage-1 embeddings ``[n, d]`` of a split (evaluation mode, no views)."""
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(dataset), batch_size):
        features = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = collator(features)
        batch.pop(LABELS, None)
        inputs = {key: value.to(device) for key, value in batch.items() if isinstance(value, torch.Tensor)}
        rows.append(model(**inputs).embeddings.float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def comparison_table(ours: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    """Markdown table of hiercon vs the BCE baseline on the headline test metrics."""
    lines = ["| test metric | hiercon (two-stage) | BCE baseline | difference |", "|---|---:|---:|---:|"]
    for key, name in COMPARED_METRICS:
        if key in ours and key in baseline:
            difference = ours[key] - baseline[key]
            lines.append(f"| {name} | {ours[key]:.4f} | {baseline[key]:.4f} | {difference:+.4f} |")
    return "\n".join(lines) + "\n"


def evaluate_model_folder(
    folder: str,
    data: Any,
    split: str,
    batch_size: int = 64,
    max_length: int | None = None,
    limit: int | None = None,
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """(metrics, per-label rows) of a saved hiercon classifier on a labelled split of ``data``
    (:class:`~hiercon.recipe.arguments.DataArguments`), with the thresholds stored in its config."""
    import tempfile

    from transformers import AutoImageProcessor, AutoTokenizer, TrainingArguments

    from hiercon.modeling.classifier import load_classifier, read_hiercon_config, read_labels, read_taxonomy
    from hiercon.recipe.arguments import ModelArguments
    from hiercon.recipe.data import load_labelled_split
    from hiercon.recipe.inputs import model_inputs
    from hiercon.taxonomy import LabelTaxonomy
    from hiercon.training import ClassifierTrainer

    classifier = load_classifier(folder)
    record = read_hiercon_config(classifier.config)
    taxonomy = read_taxonomy(classifier.config) or LabelTaxonomy.from_labels(read_labels(classifier.config))
    text = classifier.main_input_name == "input_ids"
    processor = (AutoTokenizer if text else AutoImageProcessor).from_pretrained(folder)
    if text:
        data.text_column, data.image_column = data.text_column or "text", None
    dataset = load_labelled_split(data, split, taxonomy, limit)
    length = max_length or min(int(getattr(processor, "model_max_length", 512) or 512), 512)
    inputs = model_inputs(
        dataset, processor, data, ModelArguments(max_length=length), classifier.config, split
    )
    columns = label_columns(taxonomy, record["label_space"])
    with tempfile.TemporaryDirectory() as scratch:
        trainer = ClassifierTrainer(
            model=classifier,
            args=TrainingArguments(
                output_dir=scratch, per_device_eval_batch_size=batch_size, report_to="none"
            ),
            processing_class=processor,
        )
        scores, _ = trainer.predict_scores(restrict_labels(inputs, columns, split))
    return score_split(scores, truth_matrix(dataset), record["thresholds"], taxonomy, record["label_space"])
