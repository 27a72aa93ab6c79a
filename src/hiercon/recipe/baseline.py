"""The comparison baseline: a plain BCE fine-tune of the same encoder on the same data and budget.

Budget matching: the baseline gets as many encoder forward passes over training examples as the
two stages together, ``stage1 steps x examples per step x views + stage2 steps x examples per
step``, spent as full fine-tuning steps of the stage-2 batch size. It uses the stage-2 learning
rates (or ``output.baseline_learning_rate`` for the encoder) and head learning rate, schedule, warm-up share, label space and threshold
tuning on validation, and no consistency penalty: the two runs differ only by the contrastive
stage and the hierarchy-aware loss settings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback, set_seed

from hiercon.recipe.inputs import load_encoder


def matched_steps(encoder_passes: int, examples_per_step: int) -> int:
    """Optimizer steps of ``examples_per_step`` examples that spend ``encoder_passes`` forward passes."""
    return max(1, math.ceil(encoder_passes / examples_per_step))


def baseline_training_arguments(prepared: Any, encoder_passes: int) -> Any:
    from hiercon.recipe.runner import examples_per_step, training_arguments

    args = prepared.args
    stage = dataclasses.replace(args.stage2)
    stage.max_steps = matched_steps(encoder_passes, examples_per_step(prepared.stage2_args))
    if args.output.baseline_learning_rate is not None:
        stage.learning_rate = args.output.baseline_learning_rate
    return training_arguments(stage, args.output, prepared.work_dir / "baseline")


def run_baseline(
    prepared: Any, encoder_passes: int, callbacks: Sequence[TrainerCallback] = ()
) -> dict[str, float]:
    """Train, tune thresholds and score the baseline on test; returns its test metrics."""
    from hiercon.modeling import build_classifier
    from hiercon.recipe.runner import evaluate_trainer, set_decision_thresholds, train_classifier

    args = prepared.args
    set_seed(args.output.seed)
    classifier = build_classifier(
        load_encoder(args.model),
        taxonomy=prepared.data.taxonomy,
        label_space=args.stage2.label_space,
        stage1={"loss": None, "base_model": args.model.model_name_or_path},
    )
    training_args = baseline_training_arguments(prepared, encoder_passes)
    trainer, _ = train_classifier(
        prepared, classifier, training_args, callbacks, 0.0, False, prepared.work_dir / "baseline"
    )
    thresholds = set_decision_thresholds(trainer, prepared)
    metrics, _ = evaluate_trainer(trainer, prepared, thresholds, "test")
    return metrics
