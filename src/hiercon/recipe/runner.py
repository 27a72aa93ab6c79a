"""The two-stage recipe end to end: preparation, contrastive stage 1, classifier stage 2,
thresholds, test evaluation, the optional BCE baseline, then the final folder and an optional push.

    prepare (recipe.prepare)  ->  work folder (recipe.workdir)  ->  stages (recipe.stages)
    ->  scoring (recipe.scoring)  ->  final folder, card, push (recipe.publish)

A run that stops (crash, kill, a callback) is resumed by running it again (see
:mod:`hiercon.recipe.stages`). Runs unchanged under ``python``, ``torchrun`` and ``accelerate
launch``: every process trains, the main process alone writes the final folder.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from transformers import TrainerCallback

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import RecipeArguments
from hiercon.recipe.prepare import prepare
from hiercon.recipe.processes import is_main_process, wait_for_everyone
from hiercon.recipe.publish import RecipeResult, push, write_final_folder
from hiercon.recipe.scoring import comparison_table, evaluate_trainer, set_decision_thresholds, stage1_report
from hiercon.recipe.stages import ran_stage1, run_baseline, run_stage1, run_stage2
from hiercon.recipe.workdir import is_finished, open_work_dir, stage_folder


def run_recipe(args: RecipeArguments, callbacks: Sequence[TrainerCallback] = ()) -> RecipeResult:
    """Run the two-stage recipe end to end (see the module docstring)."""
    started = time.perf_counter()
    prepared = prepare(args)
    open_work_dir(prepared.work_dir, args)
    main = is_main_process()
    clock = time.perf_counter()
    stage1 = run_stage1(prepared, callbacks)
    training_seconds = {"stage1": time.perf_counter() - clock}
    clock = time.perf_counter()
    trainer, stage2 = run_stage2(prepared, stage1, callbacks)
    training_seconds["stage2"] = time.perf_counter() - clock
    thresholds = set_decision_thresholds(trainer, prepared)
    validation_metrics, _ = evaluate_trainer(trainer, prepared, thresholds, "validation")
    test_metrics, per_label = evaluate_trainer(trainer, prepared, thresholds, "test")
    plots_dir = prepared.work_dir / "plots" if args.output.plots and main else None
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
    # Every process embeds (Trainer.predict gathers across processes); the main one plots.
    # With stage 1 skipped the report describes the plain encoder (a baseline for the trained ones).
    stage1_metrics = stage1_report(prepared, stage1.model, plots_dir)
    baseline_metrics = None
    comparison = None
    encoder_passes = stage1.encoder_passes + stage2.encoder_passes
    if args.output.compare_baseline:
        clock = time.perf_counter()
        baseline_metrics = run_baseline(prepared, encoder_passes, callbacks)
        training_seconds["baseline"] = time.perf_counter() - clock
        comparison = comparison_table(test_metrics, baseline_metrics)
    seconds = time.perf_counter() - started
    results = {
        "test": test_metrics,
        "validation": validation_metrics,
        "stage1": stage1_metrics,
        "baseline": baseline_metrics,
        "comparison_markdown": comparison,
        "stage2_mode": args.stage2.mode,
        "budget": {
            "stage2_mode": args.stage2.mode,
            "stage1_steps": stage1.steps,
            "stage2_steps": stage2.steps,
            "encoder_passes": encoder_passes,
        },
        "seconds": seconds,
        "training_seconds": training_seconds,
        "thresholds": thresholds.tolist(),
    }
    pushed = None
    if main:
        folder = write_final_folder(prepared, trainer, stage1, stage2, results, per_label)
        if args.output.push_to_hub:
            pushed = push(prepared, folder)
    wait_for_everyone()
    return RecipeResult(
        output_dir=prepared.output_dir,
        metrics=test_metrics,
        validation_metrics=validation_metrics,
        stage1_metrics=stage1_metrics,
        baseline_metrics=baseline_metrics,
        comparison=comparison,
        seconds=seconds,
        pushed_url=pushed,
    )


def run_stage1_only(args: RecipeArguments) -> Path:
    """Stage 1 alone (``recipes/stage1.py``): the contrastive encoder saved in ``<work_dir>/stage1/final``."""
    prepared = prepare(args)
    open_work_dir(prepared.work_dir, args)
    run_stage1(prepared, ())
    return stage_folder(args.output, "stage1")


def require_stage1(args: RecipeArguments) -> None:
    """Refuse to start stage 2 alone without a finished stage 1 (none is needed when it is skipped or
    in the joint mode)."""
    folder = stage_folder(args.output, "stage1")
    if ran_stage1(args) and not is_finished(folder):
        raise ConfigError(f"no finished stage 1 in {folder}; run recipes/stage1.py with this config first")
