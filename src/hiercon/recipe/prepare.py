"""Preparation: everything a run checks and loads before it writes its first file, the data, the
encoder's processor and config, the model inputs of each split, the loss (built once as a check)
and the ``TrainingArguments`` of both stages.

:func:`check_recipe` is the validation that ``hiercon train`` (through :func:`prepare`) and
``hiercon check`` share; :func:`prepare` adds the model inputs and the stage-1 cluster set-up."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoConfig, TrainingArguments

from hiercon.errors import ConfigError
from hiercon.modality import input_modality
from hiercon.recipe.arguments import OutputArguments, RecipeArguments, StageSection
from hiercon.recipe.clusters import cluster_column, cluster_setup
from hiercon.recipe.config import argument_parser
from hiercon.recipe.data import RecipeData, load_recipe_data
from hiercon.recipe.inputs import load_processor, model_inputs, resolve_encoder_path
from hiercon.recipe.label_hierarchy import with_learned_hierarchy, with_stand_in_hierarchy
from hiercon.recipe.losses import build_loss
from hiercon.recipe.workdir import default_work_dir


@dataclass
class Checked:
    """The checked configuration with its data, processor and encoder config, nothing yet processed
    for the model."""

    args: RecipeArguments
    data: RecipeData
    processor: Any
    encoder_config: Any
    stage1_args: TrainingArguments
    stage2_args: TrainingArguments
    work_dir: Path
    output_dir: Path


@dataclass
class Prepared:
    """Everything checked and loaded before the first file is written."""

    args: RecipeArguments
    data: RecipeData
    processor: Any
    inputs: dict[str, Any]
    stage1_train: Any
    stage1_callbacks: list[Any]
    stage1_args: TrainingArguments
    stage2_args: TrainingArguments
    work_dir: Path
    output_dir: Path


def accelerator_available() -> bool:
    """Whether torch sees an accelerator (pinned memory helps only then; without one torch warns)."""
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def training_arguments(stage: StageSection, output: OutputArguments, run_dir: Path) -> TrainingArguments:
    """The stage's ``TrainingArguments``, later entries winning: the recipe's choices (seed, full
    checkpoints for resuming), the recipe's defaults for the run and the stage, the run-wide values
    given in ``output``, the stage's given values, and the stage's run folder. Memory is pinned
    only when there is an accelerator."""
    values: dict[str, Any] = {
        "seed": output.seed,
        "save_strategy": "steps",
        "save_only_model": False,
        "dataloader_pin_memory": accelerator_available(),
        **output.TRAINING_DEFAULTS,
        **stage.recipe_defaults(),
        **output.training_args,
        **stage.training_args,
        "output_dir": str(run_dir),
    }
    try:
        (arguments,) = argument_parser(TrainingArguments).parse_dict(values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid {stage.SECTION} training arguments: {error}") from None
    return arguments


def with_training_values(stage: StageSection, **values: Any) -> StageSection:
    """A copy of ``stage`` with these ``TrainingArguments`` values."""
    return dataclasses.replace(stage, training_args={**stage.training_args, **values})


def load_encoder_config(args: RecipeArguments) -> Any:
    """The encoder's config without loading weights."""
    if args.model.model_config is not None:
        settings = dict(args.model.model_config)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)
    try:
        return AutoConfig.from_pretrained(resolve_encoder_path(args.model.model_name_or_path))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load the encoder {args.model.model_name_or_path!r}: {error}") from None


def check_recipe(args: RecipeArguments, learn_hierarchy: bool = True) -> Checked:
    """Load and check the data, the labels against the taxonomy, the encoder's processor and config, the
    loss on the label space and both stages' training arguments; nothing is written.

    With ``learn_hierarchy`` false, a hierarchy learned from the encoder's embeddings is replaced by one
    of the same shape built without the encoder (:func:`with_stand_in_hierarchy`).
    """
    data = load_recipe_data(
        args.data, seed=args.output.seed, label_space=args.stage2.label_space, cluster_column=cluster_column(args.stage1)
    )
    processor = load_processor(args.model, input_modality(args.data))
    encoder_config = load_encoder_config(args)
    if learn_hierarchy:
        data = with_learned_hierarchy(args, data, processor, encoder_config)
    else:
        data = with_stand_in_hierarchy(args, data)
    build_loss(args.stage1, data.label_space, args.model.projection_dim or encoder_config.hidden_size)
    work_dir = default_work_dir(args.output)
    return Checked(
        args=args,
        data=data,
        processor=processor,
        encoder_config=encoder_config,
        stage1_args=training_arguments(args.stage1, args.output, work_dir / "stage1"),
        stage2_args=training_arguments(args.stage2, args.output, work_dir / "stage2"),
        work_dir=work_dir,
        output_dir=Path(args.output.output_dir).resolve(),
    )


def prepare(args: RecipeArguments) -> Prepared:
    """Check and load everything (:func:`check_recipe`), then the model inputs of every split and the
    stage-1 training set and callbacks that feed the loss its clusters (nothing is written)."""
    checked = check_recipe(args)
    data = checked.data
    inputs = {
        split: model_inputs(dataset, checked.processor, args.data, args.model, checked.encoder_config, split)
        for split, dataset in data.splits().items()
    }
    stage1_train, stage1_callbacks = cluster_setup(args.stage1, data.label_space, inputs["train"], args.output.seed)
    return Prepared(
        args=args,
        data=data,
        processor=checked.processor,
        inputs=inputs,
        stage1_train=stage1_train,
        stage1_callbacks=stage1_callbacks,
        stage1_args=checked.stage1_args,
        stage2_args=checked.stage2_args,
        work_dir=checked.work_dir,
        output_dir=checked.output_dir,
    )
