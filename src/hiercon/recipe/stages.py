"""The training stages: contrastive stage 1, the stage-2 classifier, and the BCE baseline.

Each stage trains with a Trainer whose checkpoints live in its run folder under the work folder;
a finished stage leaves a ``final`` folder and is loaded from there when the run is repeated, an
unfinished one continues from its last checkpoint (model, optimizer, scheduler, RNG states and data
order), so it ends with the same weights as an uninterrupted run.

Stage-2 modes (``stage2.mode``): ``full``, ``linear_probe``, ``head`` (the head fitted to
convergence on the frozen encoder, no gradient steps), ``head_then_full`` (that fit, then full
fine-tuning: LP-FT) and ``joint`` (BCE plus ``stage2.contrastive_weight`` times ``stage1.loss`` in one
run; stage 1 then does not run and the stage-1 section only configures the loss and its views).

Baseline budget: the baseline gets as many encoder forward passes over training examples as the
two stages together, ``stage1 steps x examples per step x views + stage2 passes``, spent as full
fine-tuning steps of the stage-2 batch size. Stage 2 spends ``steps x examples per step`` (times
``stage1.num_views`` in the joint mode), plus one forward pass per training example for a head fit;
a forward-only pass counts as a full one, which favours the baseline. It uses the stage-2 learning
rates (or ``output.baseline_learning_rate`` for the encoder) and head learning rate, schedule,
warm-up share, label space and threshold tuning on validation, and no consistency penalty: the two
runs differ only by the contrastive stage and the hierarchy-aware loss settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments, set_seed

from hiercon.modeling.adapters import lora_config, merge_lora
from hiercon.recipe.arguments import ModelArguments
from hiercon.recipe.inputs import load_encoder
from hiercon.recipe.losses import build_loss
from hiercon.recipe.optim import with_head_learning_rate
from hiercon.recipe.prepare import Prepared, training_arguments, with_training_values
from hiercon.recipe.processes import wait_for_everyone
from hiercon.recipe.scoring import evaluate_trainer, set_decision_thresholds
from hiercon.recipe.workdir import is_finished, last_checkpoint, read_summary, save_atomically, write_summary

logger = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    """A finished stage: its model, optimizer steps, encoder forward passes and log history."""

    model: Any
    steps: int
    encoder_passes: int
    log_history: list[dict[str, Any]] = field(default_factory=list)


def examples_per_step(training_args: TrainingArguments) -> int:
    """Training examples one optimizer step reads, over all processes."""
    return (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * max(1, training_args.world_size)
    )


def recipe_lora(model: ModelArguments) -> Any:
    """The recipe's LoRA config (``model.lora_*``), or None when ``model.lora`` is off."""
    if not model.lora:
        return None
    return lora_config(
        r=model.lora_r,
        alpha=model.lora_alpha,
        dropout=model.lora_dropout,
        target_modules=model.lora_target_modules,
    )


def _reload(final: Path) -> dict[str, Any]:
    logger.info("%s is complete: loading it", final)
    return read_summary(final)


def ran_stage1(args: Any) -> bool:
    """Whether the run trains a stage-1 encoder (not when skipped, nor in the one-stage joint mode)."""
    return not (args.stage1.skip or args.stage2.mode == "joint")


def run_stage1(prepared: Prepared, callbacks: Sequence[TrainerCallback]) -> StageOutcome:
    """Contrastive training of the encoder, or the plain encoder when stage 1 is skipped."""
    from hiercon.modeling import ContrastiveModel
    from hiercon.training import ContrastiveTrainer

    args = prepared.args
    run_dir = prepared.work_dir / "stage1"
    final = run_dir / "final"
    if not ran_stage1(args):
        set_seed(args.output.seed)
        model = ContrastiveModel(load_encoder(args.model), args.model.pooling, args.model.projection_dim)
        return StageOutcome(model, 0, 0)
    if args.output.resume and is_finished(final):
        summary = _reload(final)
        model = ContrastiveModel.from_pretrained(final)
        return StageOutcome(model, summary["steps"], summary["encoder_passes"], summary["log_history"])
    set_seed(args.output.seed)
    model = ContrastiveModel.from_encoder(
        load_encoder(args.model),
        pooling=args.model.pooling,
        projection_dim=args.model.projection_dim,
        peft_config=recipe_lora(args.model),
        identity_pooler=False,  # load_encoder applied model.identity_pooler
    )
    model.contrastive_config.base_model = args.model.model_name_or_path
    trainer = ContrastiveTrainer(
        model=model,
        args=prepared.stage1_args,
        train_dataset=prepared.stage1_train,
        processing_class=prepared.processor,
        loss=build_loss(args.stage1, prepared.data.label_space, model.embedding_dim),
        views=args.stage1.num_views,
        batch_sampler="pk" if args.stage1.sampler == "multilabel" else None,
        label_space=prepared.data.label_space,
        momentum=args.stage1.momentum,
        mini_batch_size=args.stage1.mini_batch_size,
        callbacks=[*prepared.stage1_callbacks, *callbacks],
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(run_dir, args.output.resume))
    steps = trainer.state.global_step
    passes = steps * examples_per_step(prepared.stage1_args) * args.stage1.num_views
    history = list(trainer.state.log_history)

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        prepared.processor.save_pretrained(folder)
        write_summary(folder, steps, passes, history)

    save_atomically(save, final, trainer.is_world_process_zero())
    wait_for_everyone()
    return StageOutcome(model, steps, passes, history)


FROZEN_MODES = ("linear_probe", "head")


def classifier_trainer(
    prepared: Prepared,
    classifier: Any,
    training_args: TrainingArguments,
    callbacks: Sequence[TrainerCallback] = (),
    consistency_weight: float = 0.0,
    mode: str = "full",
) -> Any:
    """A ``ClassifierTrainer`` (``JointClassifierTrainer`` in the joint mode) on the stage-2 label space
    running ``mode``, the head at ``stage2.head_learning_rate``."""
    from hiercon.training import ClassifierTrainer, JointClassifierTrainer

    args = prepared.args
    options: dict[str, Any] = dict(
        head_learning_rate=args.stage2.head_learning_rate,
        model=classifier,
        args=training_args,
        train_dataset=prepared.inputs["train"],
        eval_dataset=prepared.inputs["validation"],
        processing_class=prepared.processor,
        consistency_weight=consistency_weight,
        mode=mode,
        peft_config=None if mode in FROZEN_MODES else recipe_lora(args.model),
        taxonomy=prepared.data.taxonomy,
        callbacks=list(callbacks),
    )
    if mode != "joint":
        class_weight = None if args.stage2.head_class_weight == "none" else args.stage2.head_class_weight
        return with_head_learning_rate(ClassifierTrainer)(
            head_l2=args.stage2.head_l2, head_class_weight=class_weight, **options
        )
    from hiercon.training.head_fit import classification_layer

    width = classification_layer(classifier).in_features
    return with_head_learning_rate(JointClassifierTrainer)(
        contrastive_loss=build_loss(args.stage1, prepared.data.label_space, width),
        contrastive_weight=args.stage2.contrastive_weight,
        views=args.stage1.num_views,
        **options,
    )


def stage2_encoder_passes(
    mode: str, steps: int, training_args: TrainingArguments, prepared: Prepared
) -> int:
    """Encoder forward passes of stage 2: ``steps x examples per step`` (x views in the joint mode), plus
    one pass per training example for the head fit of the head modes."""
    views = prepared.args.stage1.num_views if mode == "joint" else 1
    head_fit = len(prepared.inputs["train"]) if mode in ("head", "head_then_full") else 0
    return steps * examples_per_step(training_args) * views + head_fit


def train_classifier(
    prepared: Prepared,
    classifier: Any,
    training_args: TrainingArguments,
    callbacks: Sequence[TrainerCallback],
    consistency_weight: float,
    mode: str,
) -> tuple[Any, StageOutcome]:
    """Train (or reload, when finished before) a stage-2 style classifier; returns (trainer, outcome)."""
    from hiercon.modeling.classifier import load_classifier

    run_dir = Path(training_args.output_dir)
    final = run_dir / "final"
    resume = prepared.args.output.resume
    if resume and is_finished(final):
        summary = _reload(final)
        trainer = classifier_trainer(prepared, load_classifier(final), training_args)
        return trainer, StageOutcome(
            trainer.model, summary["steps"], summary["encoder_passes"], summary["log_history"]
        )
    trainer = classifier_trainer(prepared, classifier, training_args, callbacks, consistency_weight, mode)
    trainer.train(resume_from_checkpoint=last_checkpoint(run_dir, resume))
    steps = trainer.state.global_step
    passes = stage2_encoder_passes(mode, steps, training_args, prepared)
    history = list(trainer.state.log_history)

    def save(folder: Path) -> None:
        merge_lora(trainer.model).save_pretrained(folder)
        prepared.processor.save_pretrained(folder)
        write_summary(folder, steps, passes, history)

    save_atomically(save, final, trainer.is_world_process_zero())
    wait_for_everyone()
    return trainer, StageOutcome(trainer.model, steps, passes, history)


def run_stage2(
    prepared: Prepared, stage1: StageOutcome, callbacks: Sequence[TrainerCallback]
) -> tuple[Any, StageOutcome]:
    """``build_classifier`` on the stage-1 encoder, then stage 2 in ``stage2.mode`` on the label space."""
    from hiercon.modeling import build_classifier

    args = prepared.args
    set_seed(args.output.seed)
    # The joint mode's encoder is untrained: no stage-1 pooling to compare the head's features with.
    classifier = build_classifier(
        stage1.model.encoder if args.stage2.mode == "joint" else stage1.model,
        taxonomy=prepared.data.taxonomy,
        label_space=args.stage2.label_space,
        stage1=stage1.model.stage1_info() if ran_stage1(args) else {"loss": None},
    )
    return train_classifier(
        prepared,
        classifier,
        prepared.stage2_args,
        callbacks,
        args.stage2.consistency_weight,
        args.stage2.mode,
    )


# ---- the baseline ---------------------------------------------------------------------------------------


def matched_steps(encoder_passes: int, examples_per_step: int) -> int:
    """Optimizer steps of ``examples_per_step`` examples that spend ``encoder_passes`` forward passes."""
    return max(1, math.ceil(encoder_passes / examples_per_step))


def baseline_training_arguments(prepared: Prepared, encoder_passes: int) -> TrainingArguments:
    """Stage 2's training arguments with the matched number of steps (and the baseline's rate)."""
    args = prepared.args
    values: dict[str, Any] = {
        "max_steps": matched_steps(encoder_passes, examples_per_step(prepared.stage2_args))
    }
    if args.output.baseline_learning_rate is not None:
        values["learning_rate"] = args.output.baseline_learning_rate
    stage = with_training_values(args.stage2, **values)
    return training_arguments(stage, args.output, prepared.work_dir / "baseline")


def run_baseline(
    prepared: Prepared, encoder_passes: int, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    """Train, tune thresholds and score the baseline on test; returns its test metrics."""
    from hiercon.modeling import build_classifier

    args = prepared.args
    set_seed(args.output.seed)
    classifier = build_classifier(
        load_encoder(args.model),
        taxonomy=prepared.data.taxonomy,
        label_space=args.stage2.label_space,
        stage1={"loss": None, "base_model": args.model.model_name_or_path},
    )
    training_args = baseline_training_arguments(prepared, encoder_passes)
    trainer, _ = train_classifier(prepared, classifier, training_args, callbacks, 0.0, "full")
    thresholds = set_decision_thresholds(trainer, prepared)
    metrics, _ = evaluate_trainer(trainer, prepared, thresholds, "test")
    return metrics
