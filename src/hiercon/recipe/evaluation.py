"""Scoring a trained classifier on a split (through :func:`hiercon.metrics.evaluate_multilabel`), the
per-label table, stage-1 embeddings, and the markdown comparison of two runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from datasets import Dataset

from hiercon.metrics.classification import per_label_report
from hiercon.metrics.evaluation import describe_metric, evaluate_multilabel
from hiercon.metrics.report import markdown_table
from hiercon.modality import TEXT, input_modality
from hiercon.recipe.data import LABELS
from hiercon.taxonomy.label_space import LabelSpace

#: The test metrics of the printed comparison with the baseline (keys of ``evaluate_multilabel``).
COMPARED_METRICS = (
    "micro_f1",
    "macro_f1",
    "map",
    "consistent/macro_f1",
    "nodes/macro_f1",
    "hierarchical_f1",
    "consistency_rate",
)


def score_split(
    scores: np.ndarray,
    truth: np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
    taxonomy: Any,
    label_space: str,
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """(metrics, per-label rows) of sigmoid ``scores`` over the ``label_space`` columns of ``taxonomy``
    against multi-hot truth over those columns or over all nodes:
    :func:`~hiercon.metrics.evaluate_multilabel` (``macro_f1`` is over the fine labels) and
    :func:`~hiercon.metrics.per_label_report` of the columns."""
    space = LabelSpace(taxonomy, label_space)  # type: ignore[arg-type]
    truth = space.multi_hot(np.asarray(truth, dtype=np.float32), "truth")
    metrics = evaluate_multilabel(scores, truth, space, thresholds)
    return metrics, per_label_report(truth, scores, thresholds, space.names)


def truth_matrix(dataset: Dataset) -> np.ndarray:
    return np.asarray(dataset[LABELS], dtype=np.float32)


def embed(model: Any, dataset: Dataset, collator: Any, batch_size: int = 64) -> np.ndarray:
    """Stage-1 embeddings ``[n, d]`` of a split (evaluation mode, no views), from ``Trainer.predict``."""
    from hiercon.training.prediction import predict_embeddings

    return predict_embeddings(model, dataset, collator, batch_size)


def comparison_table(ours: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    """Markdown table of hiercon vs the BCE baseline on the headline test metrics."""
    rows = [
        [describe_metric(key), ours[key], baseline[key], f"{ours[key] - baseline[key]:+.4f}"]
        for key in COMPARED_METRICS
        if key in ours and key in baseline
    ]
    header = ["test metric", "hiercon (two-stage)", "BCE baseline", "difference"]
    return markdown_table(header, rows, align=["left", "right", "right", "right"])


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
    from hiercon.modeling.lengths import inference_max_length
    from hiercon.recipe.arguments import ModelArguments
    from hiercon.recipe.data import load_labelled_split
    from hiercon.recipe.inputs import model_inputs
    from hiercon.recipe.prepare import accelerator_available
    from hiercon.taxonomy import LabelTaxonomy
    from hiercon.training import ClassifierTrainer

    classifier = load_classifier(folder)
    record = read_hiercon_config(classifier.config)
    taxonomy = read_taxonomy(classifier.config) or LabelTaxonomy.from_labels(read_labels(classifier.config))
    text = input_modality(classifier) == TEXT
    processor = (AutoTokenizer if text else AutoImageProcessor).from_pretrained(folder)
    if text:
        data.text_column, data.image_column = data.text_column or "text", None
    space = LabelSpace(taxonomy, record["label_space"])
    dataset = load_labelled_split(data, split, space, limit)
    length = max_length or inference_max_length(processor, classifier.config) or 512
    inputs = model_inputs(
        dataset, processor, data, ModelArguments(max_length=length), classifier.config, split
    )
    with tempfile.TemporaryDirectory() as scratch:
        trainer = ClassifierTrainer(
            model=classifier,
            args=TrainingArguments(
                output_dir=scratch,
                per_device_eval_batch_size=batch_size,
                report_to="none",
                dataloader_pin_memory=accelerator_available(),
            ),
            processing_class=processor,
        )
        scores, _ = trainer.predict_scores(inputs)
    return score_split(scores, truth_matrix(dataset), record["thresholds"], taxonomy, record["label_space"])
