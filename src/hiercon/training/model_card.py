"""Model cards written by the trainers, as SetFit and sentence-transformers do.

A :class:`ModelCardCallback` fills the trainer's :class:`~hiercon.hub.HierconCardData` while it trains
(the training settings that differ from the defaults, the training and validation losses, the
latest evaluation metrics). When the model is saved (``save_model``, main process only) or pushed
(``push_to_hub`` calls ``create_model_card``), the trainer adds what it knows about the model (the
losses with their settings and citations, the labels, the taxonomy, the dataset sizes) and writes
``README.md`` next to the weights.

:class:`EncoderCardMixin` gives :class:`~hiercon.training.ContrastiveTrainer` a stage-1 encoder card,
:class:`ClassifierCardMixin` gives :class:`~hiercon.training.ClassifierTrainer` a classifier card.
Pass ``model_card_data=HierconCardData(language=["en"], datasets=[...], ...)`` to either trainer to
set what only the user knows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, TrainingArguments

from hiercon.hub.card_data import HierconCardData
from hiercon.hub.model_card import dataset_statistics, save_model_card
from hiercon.modeling.adapters import base_model_of
from hiercon.record import HierconRecord

logger = logging.getLogger(__name__)

# TrainingArguments that say where and how often things are written, not how the model was trained.
UNREPORTED_ARGUMENTS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "logging_dir",
        "logging_strategy",
        "logging_first_step",
        "logging_steps",
        "eval_strategy",
        "eval_steps",
        "eval_delay",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "save_only_model",
        "report_to",
        "run_name",
        "disable_tqdm",
        "do_train",
        "do_eval",
        "do_predict",
        "push_to_hub",
        "hub_model_id",
        "hub_strategy",
        "hub_token",
        "hub_private_repo",
        "hub_always_push",
        "hub_revision",
        "push_to_hub_token",
        "resume_from_checkpoint",
        "load_best_model_at_end",
        "metric_for_best_model",
        "greater_is_better",
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "local_rank",
        "accelerator_config",
        "debug",
        "gradient_checkpointing",  # an alias of activation_checkpointing
    }
)
EVALUATION_BOOKKEEPING = ("runtime", "samples_per_second", "steps_per_second", "epoch")
LABEL_COLUMNS = ("labels", "label")


def changed_arguments(args: TrainingArguments) -> dict[str, Any]:
    """The training arguments that differ from their defaults (outputs, logging and Hub settings left out).

    The defaults come from the dataclass fields: building a second ``TrainingArguments`` during
    training would reset the accelerator state the Trainer runs on.
    """
    defaults = {field.name: _field_default(field) for field in dataclasses.fields(args) if field.init}
    return {
        key: value
        for key, value in args.to_dict().items()
        if key in defaults and key not in UNREPORTED_ARGUMENTS and not _same(value, defaults[key])
    }


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _same(value: Any, default: Any) -> bool:
    """Equal, or both empty (``TrainingArguments`` turns a ``None`` default into ``False`` or ``[]``)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value == default or (not value and not default and not number)


class ModelCardCallback(TrainerCallback):
    """Records the training settings, the losses and the latest evaluation metrics in a card's data.

    ``hyperparameters_field`` names the card field the training settings go to
    (``"stage1_hyperparameters"`` or ``"stage2_hyperparameters"``).
    """

    def __init__(self, card_data: HierconCardData, hyperparameters_field: str) -> None:
        self.card_data = card_data
        self.hyperparameters_field = hyperparameters_field

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        setattr(self.card_data, self.hyperparameters_field, changed_arguments(args))

    def on_log(
        self,
        args: TrainingArguments,
        state: Any,
        control: Any,
        logs: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "loss" in logs:
            self._log_row(state)["training_loss"] = logs["loss"]

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: Any,
        control: Any,
        metrics: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        results = {
            key[len("eval_") :]: value
            for key, value in (metrics or {}).items()
            if key.startswith("eval_") and not key.endswith(EVALUATION_BOOKKEEPING)
        }
        if not results:
            return
        losses = {key: value for key, value in results.items() if key.endswith("loss")}
        row = self._log_row(state)
        for key, value in losses.items():
            row["validation_loss" if key == "loss" else f"eval_{key}"] = value
        self.card_data.metrics = results
        self.card_data.eval_split = "eval"

    def _log_row(self, state: Any) -> dict[str, Any]:
        logs = self.card_data.training_logs
        if not logs or logs[-1].get("step") != state.global_step:
            epoch = round(float(state.epoch), 4) if state.epoch is not None else None
            logs.append({"epoch": epoch, "step": state.global_step})
        return logs[-1]


class ModelCardMixin:
    """Trainer mixin: a hiercon model card on ``save_model`` and on ``push_to_hub``.

    Subclasses say which card they write (:attr:`hyperparameters_field`) and fill it from the
    trainer in :meth:`describe_model`.
    """

    hyperparameters_field = "stage2_hyperparameters"
    args: TrainingArguments
    train_dataset: Any
    eval_dataset: Any

    def __init__(self, *args: Any, model_card_data: HierconCardData | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_card_data = model_card_data if model_card_data is not None else HierconCardData()
        self._given_model_id = self.model_card_data.model_id
        self.add_callback(ModelCardCallback(self.model_card_data, self.hyperparameters_field))  # type: ignore[attr-defined]

    def describe_model(self, card_data: HierconCardData) -> None:
        """Fill the card data with what the trainer knows about its model."""
        raise NotImplementedError

    def filled_model_card_data(self, folder: str | Path | None = None) -> HierconCardData:
        """The card data, completed with the model, the datasets and the repository id (the given one,
        else the Hub repository's, else the name of the ``folder`` the model is saved in)."""
        data = self.model_card_data
        data.model_id = (
            self._given_model_id
            or getattr(self, "hub_model_id", None)
            or self.args.hub_model_id
            or Path(folder if folder is not None else self.args.output_dir).name
        )
        self.describe_model(data)
        data.dataset_statistics = self._dataset_statistics(data.label_names)
        return data

    def write_model_card(self, folder: str | Path | None = None) -> Path | None:
        """Write ``README.md`` into ``folder`` (default ``args.output_dir``) on the main process.

        A card that cannot be built is reported in the log and skipped: the saved model stays usable.
        """
        if not self.is_world_process_zero():  # type: ignore[attr-defined]
            return None
        folder = Path(folder if folder is not None else self.args.output_dir)
        try:
            return save_model_card(self.filled_model_card_data(folder), folder, secrets=[self.args.hub_token])
        except (ValueError, TypeError, KeyError) as error:
            logger.warning("no model card written to %s: %s", folder, error)
            return None

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model as the Trainer does; a save requested by the user also writes the card."""
        super().save_model(output_dir, _internal_call)  # type: ignore[misc]
        if not _internal_call:
            self.write_model_card(output_dir)

    def create_model_card(
        self,
        language: str | list[str] | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write the hiercon card into ``args.output_dir`` (``push_to_hub`` uploads it with the model).

        The arguments of ``Trainer.create_model_card`` that a hiercon card holds are taken over.
        """
        data = self.model_card_data
        if language:
            data.language = [language] if isinstance(language, str) else list(language)
        if license:
            data.license = license
        if tags:
            data.tags = list(dict.fromkeys([*data.tags, *([tags] if isinstance(tags, str) else tags)]))
        if model_name:
            data.model_name = model_name
        if finetuned_from:
            data.base_model = finetuned_from
        if dataset:
            data.datasets = [dataset] if isinstance(dataset, str) else list(dataset)
        self.write_model_card(self.args.output_dir)

    def _dataset_statistics(self, label_names: Sequence[str]) -> dict[str, dict[str, Any]]:
        splits = {"train": self.train_dataset}
        if isinstance(self.eval_dataset, Mapping):
            splits.update(self.eval_dataset)
        else:
            splits["eval"] = self.eval_dataset
        return {
            name: split_statistics(dataset, label_names)
            for name, dataset in splits.items()
            if dataset is not None and hasattr(dataset, "__len__")
        }


def split_statistics(dataset: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """The size of a split and, when its label column holds multi-hot rows over ``label_names``,
    its label statistics (:func:`~hiercon.hub.model_card.dataset_statistics`)."""
    columns = getattr(dataset, "column_names", None) or []
    column = next((name for name in LABEL_COLUMNS if name in columns), None)
    if column is not None and label_names:
        try:
            return dataset_statistics(np.asarray(dataset[column]), label_names)
        except (ValueError, TypeError):
            pass  # names, ids or paths: the size is what the card reports
    return {"examples": len(dataset)}


class EncoderCardMixin(ModelCardMixin):
    """The card of a stage-1 encoder trained by :class:`~hiercon.training.ContrastiveTrainer`."""

    hyperparameters_field = "stage1_hyperparameters"
    loss: Any
    taxonomy: Any

    def describe_model(self, card_data: HierconCardData) -> None:
        model = self.accelerator.unwrap_model(self.model)  # type: ignore[attr-defined]
        card_data.kind = "encoder"
        card_data.pipeline_tag = "feature-extraction"
        stage1 = {key: value for key, value in model.stage1_info().items() if value not in (None, "", {})}
        stage1["label_kind"] = getattr(self.loss, "label_kind", None)
        card_data.stage1 = stage1
        card_data.base_model = card_data.base_model or stage1.get("base_model")
        space = getattr(self, "label_space", None)
        names, columns, taxonomy = label_columns(space if space is not None else self.taxonomy)
        card_data.label_names = names or label_names_of(self.train_dataset)
        card_data.label_space = columns
        card_data.taxonomy = taxonomy


class ClassifierCardMixin(ModelCardMixin):
    """The card of a multi-label classifier trained by :class:`~hiercon.training.ClassifierTrainer`."""

    hyperparameters_field = "stage2_hyperparameters"
    stage2_record: Mapping[str, Any]

    def describe_model(self, card_data: HierconCardData) -> None:
        model = self.accelerator.unwrap_model(self.model)  # type: ignore[attr-defined]
        config = base_model_of(model).config
        record = HierconRecord.from_config(config)
        if record.stage2 is None:
            record = record.replace(stage2=self.stage2_record)
        given_base_model = card_data.base_model
        card_data.kind = "classifier"
        card_data.set_record(record, config)
        card_data.base_model = given_base_model or card_data.base_model


def label_columns(labels: Any) -> tuple[list[str], str, Any]:
    """``(names, "nodes" | "leaves", taxonomy)`` of a trainer's taxonomy or label space (or None)."""
    if labels is None:
        return [], "leaves", None
    if hasattr(labels, "names") and hasattr(labels, "columns"):  # a LabelSpace
        return list(labels.names), labels.columns, None if labels.is_flat else labels.taxonomy
    return list(labels.labels), "nodes", labels


def label_names_of(dataset: Any) -> list[str]:
    """The class names of a dataset's ``ClassLabel`` label column (or a list of them), else none."""
    features = getattr(dataset, "features", None) or {}
    for column in LABEL_COLUMNS:
        feature = features.get(column)
        feature = getattr(feature, "feature", feature)  # a List of ClassLabel
        if hasattr(feature, "names"):
            return list(feature.names)
    return []
