"""Multi-label prediction with tuned per-label thresholds and hierarchy-consistent decoding.

:class:`MultiLabelPredictor` runs a stock ``transformers.pipeline`` (text or image classification)
on a saved hiercon classifier, so it accepts whatever that pipeline accepts (strings, image paths,
PIL images, URLs...), and then keeps only the labels above their thresholds from ``config.hiercon``.
Texts are truncated to the training ``max_length`` that hiercon saves as the tokenizer's
``model_max_length`` (or to another ``max_length``), so no text is too long to predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, pipeline

from hiercon.errors import ConfigError
from hiercon.modality import classification_task
from hiercon.modeling.lengths import inference_max_length
from hiercon.record import HierconRecord
from hiercon.taxonomy.label_space import LabelSpace

CLASSIFIER_HEADS = ("ForSequenceClassification", "ForImageClassification")


def pipeline_task(config: Any) -> str:
    """The pipeline task of a saved classifier (:func:`~hiercon.modality.classification_task`); a
    config whose architecture is no classification head is refused before any weights load."""
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith(CLASSIFIER_HEADS) for name in architectures):
        raise ConfigError(
            f"cannot tell the pipeline task of architectures {architectures or None}; "
            "expected a *ForSequenceClassification or *ForImageClassification model"
        )
    return classification_task(config)


class MultiLabelPredictor:
    """Thresholded, hierarchy-consistent multi-label predictions from a ``transformers`` pipeline.

    Decoding (``consistent=True``, for a classifier over taxonomy nodes): each label is kept when its
    score reaches its threshold, and the ancestors of every kept label are added (closure), so a
    prediction is always a set closed under ancestors (:meth:`LabelSpace.consistent_predictions`).
    With ``repair_scores=True`` the scores are first capped by their ancestors'
    (``taxonomy.make_consistent``), so a label is also dropped when an ancestor scores below it.

    Texts longer than ``max_length`` tokens are truncated; by default ``max_length`` is the limit
    saved with the tokenizer (hiercon saves the training ``max_length`` there), else what the
    model's position embeddings allow.
    """

    def __init__(
        self,
        classifier_pipeline: Any,
        consistent: bool = True,
        max_length: int | None = None,
        repair_scores: bool = False,
    ) -> None:
        config = classifier_pipeline.model.config
        if getattr(config, "problem_type", None) != "multi_label_classification":
            raise ConfigError(
                f"MultiLabelPredictor needs a multi-label classifier; problem_type is {config.problem_type!r}"
            )
        self.pipeline = classifier_pipeline
        record = HierconRecord.from_config(config)
        self.labels = list(record.labels)
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}
        self.thresholds = np.asarray(record.thresholds, dtype=np.float64)
        self.label_space = record.label_space
        self.taxonomy = record.taxonomy
        self.consistent = consistent
        self.repair_scores = repair_scores
        self.space = LabelSpace.for_names(self.labels, self.taxonomy)
        self.max_length = self._max_length(max_length)

    def _max_length(self, max_length: int | None) -> int | None:
        """The token limit of text inputs (None for images, or a text model that records none)."""
        if max_length is not None and max_length < 1:
            raise ConfigError(f"max_length must be a positive integer or None, got {max_length}")
        if self.pipeline.task != "text-classification":
            return None
        return max_length or inference_max_length(self.pipeline.tokenizer, self.pipeline.model.config)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        device: int | str | torch.device | None = None,
        consistent: bool = True,
        max_length: int | None = None,
        repair_scores: bool = False,
        **kwargs: Any,
    ) -> MultiLabelPredictor:
        """Load a saved classifier folder (or Hub id) with ``transformers.pipeline`` (no remote code);
        ``max_length`` overrides the token limit saved with the model."""
        if kwargs.get("trust_remote_code"):
            raise ConfigError(
                "trust_remote_code is not supported; hiercon classifiers are stock transformers models"
            )
        task = pipeline_task(AutoConfig.from_pretrained(model_dir))
        classifier = pipeline(task, model=str(model_dir), device=device, **kwargs)
        return cls(classifier, consistent=consistent, max_length=max_length, repair_scores=repair_scores)

    @classmethod
    def from_pipeline(
        cls,
        classifier_pipeline: Any,
        consistent: bool = True,
        max_length: int | None = None,
        repair_scores: bool = False,
    ) -> MultiLabelPredictor:
        """Wrap an existing text- or image-classification pipeline."""
        return cls(classifier_pipeline, consistent, max_length, repair_scores)

    @property
    def is_hierarchical(self) -> bool:
        """Whether consistent decoding applies: a taxonomy and a classifier over all its nodes."""
        return self.space.closes_ancestors

    # ---- scores ----

    def predict_proba(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
        """Sigmoid scores ``[n, labels]`` in label-id order (one row per input; one row for a single input)."""
        batch = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if not batch:
            return np.zeros((0, len(self.labels)))
        options: dict[str, Any] = {"top_k": len(self.labels), "function_to_apply": "sigmoid"}
        if self.max_length is not None:
            options.update(truncation=True, max_length=self.max_length)
        if batch_size is not None:
            options["batch_size"] = batch_size
        outputs = self.pipeline(self._for_pipeline(batch), **options)
        scores = np.zeros((len(batch), len(self.labels)))
        for row, ranked in enumerate(outputs):
            for entry in ranked:
                scores[row, self.label_to_id[entry["label"]]] = entry["score"]
        return scores

    def _for_pipeline(self, batch: list[Any]) -> list[Any]:
        """Inputs as the pipeline should get them.

        The image pipeline converts every image it loads to RGB; a one-channel (grayscale) model gets its
        images loaded here instead, as ``[H, W, 1]`` arrays, which the pipeline passes on unconverted.
        """
        config = self.pipeline.model.config
        if self.pipeline.task != "image-classification" or getattr(config, "num_channels", 3) != 1:
            return batch
        from transformers.image_utils import load_image

        return [
            item
            if isinstance(item, (np.ndarray, torch.Tensor))
            else np.asarray(load_image(item).convert("L"))[..., None]
            for item in batch
        ]

    def decide(self, scores: np.ndarray, consistent: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores used, bool picks)`` for score rows: thresholds and ancestor closure (after the score
        repair with ``repair_scores``), or thresholds alone when not ``consistent``."""
        consistent = self.consistent if consistent is None else consistent
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(self.labels):
            raise ConfigError(f"scores must have shape [n, {len(self.labels)}], got {scores.shape}")
        if not consistent:
            return scores, scores >= self.thresholds
        scores, picked = self.space.consistent_predictions(scores, self.thresholds, self.repair_scores)
        return scores, picked > 0

    def __call__(
        self,
        inputs: Any,
        top_k: int | None = None,
        consistent: bool | None = None,
        batch_size: int | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Per input, the predicted labels as ``{"label", "score"}`` dicts, best first.

        Args:
            inputs: one input or a list of inputs the pipeline accepts (texts, images, paths...).
            top_k: keep at most this many predicted labels per input (None: all above threshold).
            consistent: override the predictor's hierarchy-consistent decoding for this call.
        """
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be a positive integer or None, got {top_k}")
        scores, picked = self.decide(self.predict_proba(inputs, batch_size), consistent)
        return [self._ranked(row_scores, row_picked, top_k) for row_scores, row_picked in zip(scores, picked)]

    def _ranked(self, scores: np.ndarray, picked: np.ndarray, top_k: int | None) -> list[dict[str, Any]]:
        chosen = sorted(np.flatnonzero(picked), key=lambda i: (-scores[i], i))
        return [{"label": self.labels[i], "score": float(scores[i])} for i in chosen[:top_k]]

    def predict_labels(self, inputs: Any, consistent: bool | None = None) -> list[list[str]]:
        """Per input, the names of the predicted labels (in label-id order)."""
        _, picked = self.decide(self.predict_proba(inputs), consistent)
        return [[self.labels[i] for i in np.flatnonzero(row)] for row in picked]

    def set_thresholds(self, thresholds: Sequence[float]) -> None:
        """Replace the per-label thresholds used by this predictor (the saved model is not changed)."""
        values = np.asarray(thresholds, dtype=np.float64)
        if values.shape != (len(self.labels),):
            raise ConfigError(f"expected {len(self.labels)} thresholds, got shape {values.shape}")
        self.thresholds = values
