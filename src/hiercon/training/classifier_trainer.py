"""Stage 2: train a multi-label classifier with the HF Trainer.

Modes (``mode=``):

- ``"full"``: fine-tune the whole model (optionally with LoRA);
- ``"linear_probe"``: train the head alone by gradient descent on a frozen encoder;
- ``"head"``: frozen encoder, the head fitted to convergence (L-BFGS, :mod:`hiercon.training.head_fit`)
  and no gradient steps;
- ``"head_then_full"``: the ``"head"`` fit, then fine-tuning of the whole model (LP-FT, Kumar et al.
  2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution");
- ``"joint"``: BCE plus a contrastive loss in one run (:class:`~hiercon.training.JointClassifierTrainer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import TrainOutput

from hiercon.errors import ConfigError
from hiercon.losses.classification import MultiLabelLoss, build_objective, taxonomy_edge_index
from hiercon.metrics.thresholds import (
    DEFAULT_GRID,
    DEFAULT_MIN_POSITIVES,
    DEFAULT_SHRINKAGE,
    FALLBACKS,
    tune_thresholds_with_fallback,
)
from hiercon.modeling.adapters import apply_lora, base_model_of, config_record, merge_lora
from hiercon.modeling.classifier import read_labels, read_taxonomy, set_stage2, set_thresholds
from hiercon.modeling.lengths import bounded_tokenizer
from hiercon.taxonomy.label_space import LabelSpace
from hiercon.training.evaluation_order import DatasetOrderEvaluation
from hiercon.training.head_fit import (
    CLASS_WEIGHTS,
    DEFAULT_HEAD_CLASS_WEIGHT,
    DEFAULT_HEAD_L2,
    HeadFit,
    classification_layer,
    fit_linear_head,
    head_features,
    write_head,
)
from hiercon.training.loss_parts import LossPartsLogging, LossPartsMeter
from hiercon.training.model_card import ClassifierCardMixin

if TYPE_CHECKING:
    from peft import PeftConfig

    from hiercon.taxonomy import LabelTaxonomy

LABEL_COLUMNS = ("labels", "label")
STAGE2_MODES = ("full", "linear_probe", "head", "head_then_full", "joint")
FROZEN_ENCODER_MODES = ("linear_probe", "head")
HEAD_FIT_MODES = ("head", "head_then_full")


def prepare_labels(
    dataset: Any, label_space: LabelSpace, split: str = "train", required: bool = True
) -> Any:
    """A ``datasets.Dataset`` whose ``labels`` column holds float32 multi-hot rows over the label
    space's columns (checked up front; any format :meth:`LabelSpace.multi_hot` reads).

    Datasets of other kinds are returned as they are; their label width is checked at the first batch.
    Without ``required``, a dataset with no label column is returned unchanged.
    """
    if dataset is None or not hasattr(dataset, "column_names") or not hasattr(dataset, "map"):
        return dataset
    if isinstance(dataset.column_names, dict):  # a DatasetDict
        raise ConfigError(f"{split}_dataset is a DatasetDict; pass one split, e.g. dataset['{split}']")
    column = next((name for name in LABEL_COLUMNS if name in dataset.column_names), None)
    if column is None and not required:
        return dataset
    if column is None:
        raise ConfigError(f"{split}_dataset needs a 'labels' column; it has {dataset.column_names}")
    from datasets import List, Value

    encoded = dataset.map(
        lambda batch: {"labels": label_space.multi_hot(batch[column], f"the {split} labels").tolist()},
        batched=True,
        remove_columns=[column] if column != "labels" else None,
        desc=f"encoding {split} labels",
    )
    return encoded.cast_column("labels", List(Value("float32")))


def classifier_config(model: nn.Module) -> Any:
    """The transformers config of a classifier, whether or not it is wrapped by peft."""
    return base_model_of(model).config


def freeze_base_model(model: nn.Module) -> int:
    """Freeze the encoder part of a classifier (linear probe); return the number of frozen tensors."""
    base = model.get_submodule(model.base_model_prefix)
    frozen = 0
    for parameter in base.parameters():
        parameter.requires_grad_(False)
        frozen += 1
    return frozen


class ClassifierTrainer(ClassifierCardMixin, LossPartsLogging, DatasetOrderEvaluation, Trainer):
    """A ``transformers.Trainer`` for multi-label classifiers built by :func:`hiercon.build_classifier`.

    Args:
        loss: ``"bce"`` (default), ``"asl"`` (asymmetric loss; ``loss_options`` such as
            ``{"gamma_neg": 4, "gamma_pos": 0, "clip": 0.05}``) or a :class:`MultiLabelLoss`.
        consistency_weight: weight of the hierarchy-consistency penalty (needs the ``"nodes"`` label
            space of a taxonomy).
        mode: ``"full"``, ``"linear_probe"``, ``"head"`` or ``"head_then_full"`` (see the module
            docstring); None: ``"linear_probe"`` with ``freeze_encoder=True``, else ``"full"``.
        freeze_encoder: train the head only by gradient descent (the ``"linear_probe"`` mode).
        head_l2: the L2 penalty λ of the head fit (``"head"`` modes; scikit-learn's ``1 / C``, see
            :func:`~hiercon.training.head_fit.fit_linear_head`).
        head_class_weight: ``"balanced"`` weights each label's positives and negatives equally in the
            head fit (scikit-learn's ``class_weight="balanced"`` per label; the default, measured ahead
            on GoEmotions' rare labels); ``None``: all weights 1.
        peft_config: wrap the classifier with this LoRA config (the head stays fully trainable).
            :meth:`save_model` then writes the merged, plain transformers model.
        taxonomy: defaults to the taxonomy stored in the classifier's ``config.hiercon``.

    Datasets need a ``labels`` column of multi-hot rows or of label-name lists; ``datasets.Dataset``
    splits are encoded and checked before training starts. Every other Trainer argument passes through.
    The loss is a per-batch mean, so ``loss_is_scaled_for_ga = False`` lets the Trainer average it over
    gradient-accumulation steps.
    """

    loss_is_scaled_for_ga = False
    loss_part_digits = 6
    #: The modes this trainer runs (the ``"joint"`` mode has its own trainer).
    modes: tuple[str, ...] = ("full", "linear_probe", "head", "head_then_full")

    def __init__(
        self,
        model: nn.Module | None = None,
        args: Any = None,
        *,
        loss: str | MultiLabelLoss = "bce",
        loss_options: dict[str, float] | None = None,
        consistency_weight: float = 0.0,
        freeze_encoder: bool = False,
        mode: str | None = None,
        head_l2: float = DEFAULT_HEAD_L2,
        head_class_weight: str | None = DEFAULT_HEAD_CLASS_WEIGHT,
        peft_config: PeftConfig | None = None,
        taxonomy: LabelTaxonomy | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        **trainer_kwargs: Any,
    ) -> None:
        if model is None:
            raise ConfigError("ClassifierTrainer needs a classifier (see hiercon.build_classifier)")
        if "tokenizer" in trainer_kwargs:
            raise ConfigError("pass the tokenizer or image processor as processing_class=, not tokenizer=")
        config = classifier_config(model)
        if getattr(config, "problem_type", None) != "multi_label_classification":
            raise ConfigError(
                f"ClassifierTrainer trains multi-label classifiers; config.problem_type is {config.problem_type!r}"
            )
        self.mode = self._resolve_mode(mode, freeze_encoder)
        freeze_encoder = self.mode in FROZEN_ENCODER_MODES
        if freeze_encoder and peft_config is not None:
            raise ConfigError(
                f"mode {self.mode!r} (freeze_encoder=True) and peft_config are exclusive: "
                "the encoder stays frozen, LoRA would train it"
            )
        if not head_l2 >= 0:
            raise ConfigError(f"head_l2 must be >= 0, got {head_l2}")
        self.head_l2 = float(head_l2)
        if head_class_weight not in CLASS_WEIGHTS:
            raise ConfigError(f"head_class_weight must be one of {CLASS_WEIGHTS}, got {head_class_weight!r}")
        self.head_class_weight = head_class_weight
        self.head_fit: HeadFit | None = None
        labels = read_labels(config)
        taxonomy = taxonomy if taxonomy is not None else read_taxonomy(config)
        self.taxonomy = taxonomy
        self.label_space = LabelSpace.for_names(labels, taxonomy)
        train_dataset = prepare_labels(train_dataset, self.label_space, "train")
        eval_dataset = self._prepare_eval(eval_dataset)
        edge_index = taxonomy_edge_index(taxonomy, labels) if taxonomy is not None else None
        self.objective = build_objective(loss, loss_options, consistency_weight, edge_index)
        self.stage2_record = self._stage2_record(freeze_encoder, peft_config)
        if peft_config is not None:
            model = apply_lora(model, peft_config)
        if freeze_encoder:
            freeze_base_model(model)
        super().__init__(
            model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset, **trainer_kwargs
        )
        # The loss is computed here, never inside the model: no num_items_in_batch plumbing.
        self.model_accepts_loss_kwargs = False
        self.loss_parts = LossPartsMeter()

    def _prepare_eval(self, eval_dataset: Any) -> Any:
        if isinstance(eval_dataset, dict):
            return {
                name: prepare_labels(split, self.label_space, name) for name, split in eval_dataset.items()
            }
        return prepare_labels(eval_dataset, self.label_space, "eval")

    def _resolve_mode(self, mode: str | None, freeze_encoder: bool) -> str:
        if mode is None:
            return "linear_probe" if freeze_encoder else "full"
        if mode not in self.modes:
            hint = "; the 'joint' mode is JointClassifierTrainer's" if mode == "joint" else ""
            raise ConfigError(f"{type(self).__name__} mode must be one of {self.modes}, got {mode!r}{hint}")
        if freeze_encoder and mode not in FROZEN_ENCODER_MODES:
            raise ConfigError(f"freeze_encoder=True contradicts mode {mode!r}, which trains the encoder")
        return mode

    def _stage2_record(self, freeze_encoder: bool, peft_config: PeftConfig | None) -> dict[str, Any]:
        peft = config_record(peft_config) if peft_config is not None else None
        record = {"mode": self.mode, **self.objective.describe(), "freeze_encoder": freeze_encoder, "peft": peft}
        if self.mode in HEAD_FIT_MODES:
            record["head_l2"] = self.head_l2
            record["head_class_weight"] = self.head_class_weight
        return record

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """Train, recording the stage-2 setup in ``config.hiercon["stage2"]`` first.

        ``"head"`` fits the head (:meth:`fit_head`) and takes no gradient step; ``"head_then_full"``
        fits it, then fine-tunes (a run resumed from a checkpoint already holds the fitted head).
        """
        set_stage2(classifier_config(self.model), self.stage2_record)
        if self.mode == "head":
            fit = self.fit_head()
            return TrainOutput(self.state.global_step, fit.bce, {"train_head_bce": fit.bce})
        if self.mode == "head_then_full" and not resume_from_checkpoint:
            self.fit_head()
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def fit_head(self, dataset: Any = None) -> HeadFit:
        """Fit the classification layer to convergence on the frozen features of ``dataset`` (default:
        the training set) and write it into the model; return the fit.

        The features are the classification layer's inputs in eval mode, what it reads at inference
        (:func:`~hiercon.training.head_fit.head_features`); the fit minimises BCE (weighted by
        ``head_class_weight``) plus ``head_l2``
        (:func:`~hiercon.training.head_fit.fit_linear_head`). The fit's summary goes into
        ``config.hiercon["stage2"]["head_fit"]`` and the logs.
        """
        dataset = self.train_dataset if dataset is None else prepare_labels(dataset, self.label_space)
        if dataset is None or not hasattr(dataset, "remove_columns"):
            raise ConfigError("fit_head needs a datasets.Dataset with a 'labels' column")
        targets = np.asarray(dataset["labels"], dtype=np.float64)
        features = head_features(self, dataset.remove_columns("labels"))
        fit = fit_linear_head(features, targets, l2=self.head_l2, class_weight=self.head_class_weight)
        write_head(classification_layer(self.model), fit)
        self.head_fit = fit
        self.stage2_record = {**self.stage2_record, "head_fit": fit.record()}
        set_stage2(classifier_config(self.model), self.stage2_record)
        summary = fit.record()
        self.log({f"head_{key}": float(summary[key]) for key in ("bce", "gradient", "iterations")})
        return fit

    # ---- loss ----

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        inputs, targets = self._split_targets(inputs)
        outputs = model(**inputs)
        parts = self.objective(outputs.logits, targets.float())
        loss = torch.stack(list(parts.values())).sum()
        if model.training:
            self.loss_parts.add(parts)
        return (loss, outputs) if return_outputs else loss

    def _split_targets(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
        """The batch's model inputs and its multi-hot ``labels``, refused when the batch has none."""
        inputs = dict(inputs)
        targets = inputs.pop("labels", None)
        if targets is None:
            raise ConfigError(f"the batch has no 'labels'; {type(self).__name__} needs multi-hot labels")
        return inputs, targets

    # ---- predictions and thresholds ----

    def predict_scores(self, dataset: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``(sigmoid scores [n, labels], multi-hot labels or None)`` of a dataset."""
        dataset = prepare_labels(dataset, self.label_space, "prediction", required=False)
        output = self.predict(dataset)
        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        scores = torch.sigmoid(torch.as_tensor(logits, dtype=torch.float32)).numpy()
        return scores, output.label_ids

    def tune_thresholds_on(
        self,
        eval_dataset: Any = None,
        grid: Sequence[float] | np.ndarray = DEFAULT_GRID,
        fallback: float = 0.5,
        min_positives: int = DEFAULT_MIN_POSITIVES,
        fallback_pool: str = "level",
        split: str | None = None,
        shrinkage: float = DEFAULT_SHRINKAGE,
    ) -> np.ndarray:
        """Tune per-label thresholds for F1 on ``eval_dataset`` (default: the trainer's eval dataset),
        store them in ``config.hiercon["thresholds"]`` with their rule (``"threshold_rule"``) and return them.

        A label with fewer than ``min_positives`` positives in the dataset takes the micro-F1-optimal
        threshold of its taxonomy level pooled (``fallback_pool="level"``; all labels when the level has too
        few positives, and for flat labels) or of all labels pooled (``"global"``); ``fallback`` when no
        pooled label has a positive (see :func:`~hiercon.metrics.thresholds.tune_thresholds_with_fallback`).
        A label's own threshold is shrunk toward that pooled threshold with pseudo-count ``shrinkage``
        (0: not shrunk). ``split`` names the dataset in the rule.
        """
        if fallback_pool not in FALLBACKS:
            raise ConfigError(f"fallback_pool must be one of {FALLBACKS}, got {fallback_pool!r}")
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None or isinstance(dataset, dict):
            raise ConfigError("tune_thresholds_on needs one evaluation dataset with labels")
        scores, label_ids = self.predict_scores(dataset)
        if label_ids is None:
            raise ConfigError("the evaluation dataset has no labels to tune thresholds on")
        groups = self.label_levels() if fallback_pool == "level" else None
        tuned = tune_thresholds_with_fallback(label_ids, scores, grid, fallback, min_positives, groups, shrinkage)
        rule = {**tuned.rule, "fallback": fallback_pool, **({"split": split} if split else {})}
        set_thresholds(classifier_config(self.model), tuned.thresholds.tolist(), rule)
        return tuned.thresholds

    def label_levels(self) -> np.ndarray:
        """The taxonomy depth of each label column (all 0 for flat labels)."""
        space = self.label_space
        return np.asarray(space.taxonomy.levels[space.node_ids])

    # ---- saving ----

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the deliverable: a plain transformers classifier (safetensors), its processor and its card.

        A LoRA-wrapped classifier is saved merged. Checkpoints written during training, and saves under
        DeepSpeed or FSDP (which need the Trainer's state gathering), use the Trainer's own format.
        """
        if _internal_call or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super().save_model(output_dir, _internal_call)
            return
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            merge_lora(self.model).save_pretrained(output_dir)
            if self.processing_class is not None:
                processor = bounded_tokenizer(self.processing_class, classifier_config(self.model))
                processor.save_pretrained(output_dir)
        self.write_model_card(output_dir)
        self.accelerator.wait_for_everyone()
