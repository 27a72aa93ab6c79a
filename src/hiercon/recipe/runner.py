"""The two-stage recipe: contrastive stage 1, classifier stage 2, thresholds, test evaluation,
plots, model card, the final model folder, an optional push and an optional BCE baseline.

Layout on disk::

    <work_dir>/stage1/checkpoint-*/, stage1/final/     the stage-1 Trainer's checkpoints, then its model
    <work_dir>/stage2/..., <work_dir>/baseline/...      the same for stage 2 and the baseline
    <output_dir>/                                       the final folder, written to a temporary
                                                        sibling and renamed when complete

A run that stops (crash, kill, a callback) is resumed by running it again: a finished stage is
loaded from its ``final`` folder, an unfinished one continues from its last checkpoint (model,
optimizer, scheduler, RNG states and data order), so it ends with the same weights as an
uninterrupted run. Runs unchanged under ``python``, ``torchrun`` and ``accelerate launch``:
every process trains, the main process alone writes the final folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import OutputArguments, RecipeArguments, Stage1Arguments, Stage2Arguments
from hiercon.recipe.card import write_recipe_card
from hiercon.recipe.config import unknown_key_error
from hiercon.recipe.data import RecipeData, load_recipe_data
from hiercon.recipe.evaluation import (
    comparison_table,
    embed,
    label_columns,
    restrict_labels,
    score_split,
    truth_matrix,
)
from hiercon.recipe.inputs import load_encoder, load_processor, model_inputs
from hiercon.recipe.losses import build_loss

logger = logging.getLogger(__name__)

STAGE_SUMMARY = "hiercon_stage.json"
RUN_RECORD = "recipe.json"
RECORDED_SECTIONS = ("model", "data", "stage1", "stage2")
UNRECORDED_KEYS = ("logging_steps", "save_steps", "save_total_limit", "preprocessing_num_workers")
RESULTS_FILE = "results.json"


@dataclass
class StageOutcome:
    """A finished stage: its model, optimizer steps, encoder forward passes and log history."""

    model: Any
    steps: int
    encoder_passes: int
    log_history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RecipeResult:
    """What a recipe run produced."""

    output_dir: Path
    metrics: dict[str, float]
    validation_metrics: dict[str, float]
    stage1_metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None
    comparison: str | None
    seconds: float
    pushed_url: str | None = None


@dataclass
class Prepared:
    """Everything checked and loaded before the first file is written."""

    args: RecipeArguments
    data: RecipeData
    processor: Any
    inputs: dict[str, Any]
    stage_inputs: dict[str, Any]
    stage1_args: TrainingArguments
    stage2_args: TrainingArguments
    work_dir: Path
    output_dir: Path
    columns: list[int]


def training_arguments(
    stage: Stage1Arguments | Stage2Arguments, output: OutputArguments, run_dir: Path
) -> TrainingArguments:
    """The stage's ``TrainingArguments`` (its ``training_args`` extras last); a bad extra is named."""
    values: dict[str, Any] = {
        "output_dir": str(run_dir),
        "per_device_train_batch_size": stage.per_device_train_batch_size,
        "gradient_accumulation_steps": stage.gradient_accumulation_steps,
        "learning_rate": stage.learning_rate,
        "weight_decay": stage.weight_decay,
        "warmup_steps": stage.warmup_steps,
        "lr_scheduler_type": stage.lr_scheduler_type,
        "num_train_epochs": stage.num_train_epochs,
        "max_steps": stage.max_steps,
        "logging_steps": stage.logging_steps,
        "save_strategy": "steps",
        "save_steps": stage.save_steps,
        "save_total_limit": stage.save_total_limit,
        "seed": output.seed,
        "report_to": output.report_to,
        "dataloader_num_workers": output.dataloader_num_workers,
        "use_cpu": output.use_cpu,
        "save_only_model": False,
    }
    if isinstance(stage, Stage2Arguments):
        values["per_device_eval_batch_size"] = stage.per_device_eval_batch_size
    valid = [item.name for item in dataclasses.fields(TrainingArguments) if item.init]
    for key in stage.training_args:
        if key not in valid:
            raise unknown_key_error(
                key, valid, f"{type(stage).__name__} training_args (transformers.TrainingArguments)"
            )
    values.update(stage.training_args)
    try:
        return TrainingArguments(**values)
    except TypeError as error:
        raise ConfigError(f"bad training_args entry: {error}") from None
    except ValueError as error:
        raise ConfigError(f"invalid training arguments: {error}") from None


def _default_work_dir(output: OutputArguments) -> Path:
    if output.work_dir:
        return Path(output.work_dir).resolve()
    final = Path(output.output_dir).resolve()
    return final.with_name(final.name + "-work")


def prepare(args: RecipeArguments) -> Prepared:
    """Load and check data, encoder processor, loss and training arguments (nothing is written)."""
    data = load_recipe_data(args.data, seed=args.output.seed)
    processor = load_processor(args.model, data.modality)
    encoder_config = load_encoder_config(args)
    build_loss(args.stage1, data.taxonomy, args.model.projection_dim or encoder_config.hidden_size)
    inputs = {
        split: model_inputs(dataset, processor, args.data, args.model, encoder_config, split)
        for split, dataset in data.splits().items()
    }
    columns = label_columns(data.taxonomy, args.stage2.label_space)
    stage_inputs = {split: restrict_labels(dataset, columns, split) for split, dataset in inputs.items()}
    work_dir = _default_work_dir(args.output)
    return Prepared(
        args=args,
        data=data,
        processor=processor,
        inputs=inputs,
        stage_inputs=stage_inputs,
        stage1_args=training_arguments(args.stage1, args.output, work_dir / "stage1"),
        stage2_args=training_arguments(args.stage2, args.output, work_dir / "stage2"),
        work_dir=work_dir,
        output_dir=Path(args.output.output_dir).resolve(),
        columns=columns,
    )


def load_encoder_config(args: RecipeArguments) -> Any:
    """The encoder's config without loading weights."""
    from transformers import AutoConfig

    from hiercon.recipe.inputs import resolve_encoder_path

    if args.model.model_config is not None:
        settings = dict(args.model.model_config)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)
    try:
        return AutoConfig.from_pretrained(resolve_encoder_path(args.model.model_name_or_path))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load the encoder {args.model.model_name_or_path!r}: {error}") from None


# ---- the work folder ----------------------------------------------------------------------------------


def run_record(args: RecipeArguments) -> dict[str, Any]:
    """The settings a resumed run must share with the run that wrote the checkpoints."""
    sections = args.to_dict()
    record = {
        f"{section}.{key}": value for section in RECORDED_SECTIONS for key, value in sections[section].items()
    }
    record["output.seed"] = args.output.seed
    return json.loads(json.dumps(record, default=str))


def open_work_dir(prepared: Prepared) -> None:
    """Check that checkpoints in the work folder come from this configuration (or clear it when
    ``output.resume`` is false), then record the configuration there."""
    work_dir, args = prepared.work_dir, prepared.args
    record_path = work_dir / RUN_RECORD
    if args.output.resume and record_path.is_file():
        previous = json.loads(record_path.read_text(encoding="utf-8"))
        current = run_record(args)
        changed = sorted(key for key in set(previous) | set(current) if previous.get(key) != current.get(key))
        if changed:
            raise ConfigError(
                f"{work_dir} holds checkpoints of a run with other settings ({', '.join(changed)}); "
                "set output.resume: false to start over there, or choose another output.work_dir"
            )
    wait_for_everyone()
    if is_main_process():
        if not args.output.resume:
            shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(run_record(args), indent=1) + "\n", encoding="utf-8")
    wait_for_everyone()


# ---- stages -------------------------------------------------------------------------------------------


def last_checkpoint(run_dir: Path, resume: bool) -> str | None:
    return get_last_checkpoint(str(run_dir)) if resume and run_dir.is_dir() else None


def save_atomically(save: Any, final: Path, is_main: bool) -> None:
    """Call ``save(folder)`` on a temporary folder and rename it to ``final`` (main process only)."""
    if not is_main:
        return
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save(partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)


def write_summary(folder: Path, steps: int, encoder_passes: int, log_history: list[dict[str, Any]]) -> None:
    summary = {"steps": steps, "encoder_passes": encoder_passes, "log_history": log_history}
    (folder / STAGE_SUMMARY).write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")


def read_summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / STAGE_SUMMARY).read_text(encoding="utf-8"))


def examples_per_step(training_args: TrainingArguments) -> int:
    return (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * max(1, training_args.world_size)
    )


def wait_for_everyone() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def run_stage1(prepared: Prepared, callbacks: Sequence[TrainerCallback]) -> StageOutcome:
    """Contrastive training of the encoder, or the plain encoder when stage 1 is skipped."""
    from hiercon.modeling import ContrastiveModel
    from hiercon.training import ContrastiveTrainer

    args = prepared.args
    run_dir = prepared.work_dir / "stage1"
    final = run_dir / "final"
    if args.stage1.skip:
        set_seed(args.output.seed)
        model = ContrastiveModel(load_encoder(args.model), args.model.pooling, args.model.projection_dim)
        return StageOutcome(model, 0, 0)
    if args.output.resume and (final / STAGE_SUMMARY).is_file():
        logger.info("stage 1 is complete in %s: loading it", final)
        summary = read_summary(final)
        model = ContrastiveModel.from_pretrained(final)
        return StageOutcome(model, summary["steps"], summary["encoder_passes"], summary["log_history"])
    set_seed(args.output.seed)
    model = ContrastiveModel.from_encoder(
        load_encoder(args.model),
        pooling=args.model.pooling,
        projection_dim=args.model.projection_dim,
        peft_config=lora_config(args) if args.model.lora else None,
    )
    model.contrastive_config.base_model = args.model.model_name_or_path
    loss = build_loss(args.stage1, prepared.data.taxonomy, model.embedding_dim)
    trainer = ContrastiveTrainer(
        model=model,
        args=prepared.stage1_args,
        train_dataset=prepared.inputs["train"],
        processing_class=prepared.processor,
        loss=loss,
        views=args.stage1.num_views,
        batch_sampler="pk" if args.stage1.sampler == "multilabel" else None,
        taxonomy=prepared.data.taxonomy,
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(run_dir, args.output.resume))
    steps = trainer.state.global_step
    passes = steps * examples_per_step(prepared.stage1_args) * args.stage1.num_views
    history = list(trainer.state.log_history)

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        write_summary(folder, steps, passes, history)

    save_atomically(save, final, trainer.is_world_process_zero())
    wait_for_everyone()
    return StageOutcome(model, steps, passes, history)


def lora_config(args: RecipeArguments) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=args.model.lora_r,
        lora_alpha=args.model.lora_alpha,
        lora_dropout=args.model.lora_dropout,
        target_modules=args.model.lora_target_modules,
    )


def classifier_trainer(
    prepared: Prepared,
    classifier: Any,
    training_args: TrainingArguments,
    callbacks: Sequence[TrainerCallback],
    consistency_weight: float,
    linear_probe: bool,
) -> Any:
    from hiercon.recipe.optim import with_head_learning_rate
    from hiercon.training import ClassifierTrainer

    args = prepared.args
    use_lora = args.model.lora and not linear_probe
    return with_head_learning_rate(ClassifierTrainer)(
        head_learning_rate=args.stage2.head_learning_rate,
        model=classifier,
        args=training_args,
        train_dataset=prepared.stage_inputs["train"],
        eval_dataset=prepared.stage_inputs["validation"],
        processing_class=prepared.processor,
        consistency_weight=consistency_weight,
        freeze_encoder=linear_probe,
        peft_config=lora_config(args) if use_lora else None,
        taxonomy=prepared.data.taxonomy,
        callbacks=list(callbacks),
    )


def train_classifier(
    prepared: Prepared,
    classifier: Any,
    training_args: TrainingArguments,
    callbacks: Sequence[TrainerCallback],
    consistency_weight: float,
    linear_probe: bool,
    run_dir: Path,
    encoder_passes_before: int = 0,
) -> tuple[Any, StageOutcome]:
    """Train (or reload, when finished before) a stage-2 style classifier; returns (trainer, outcome)."""
    from hiercon.modeling.classifier import load_classifier, merge_lora

    final = run_dir / "final"
    resume = prepared.args.output.resume
    if resume and (final / STAGE_SUMMARY).is_file():
        logger.info("%s is complete: loading it", final)
        summary = read_summary(final)
        trainer = classifier_trainer(prepared, load_classifier(final), training_args, (), 0.0, False)
        return trainer, StageOutcome(
            trainer.model, summary["steps"], summary["encoder_passes"], summary["log_history"]
        )
    trainer = classifier_trainer(
        prepared, classifier, training_args, callbacks, consistency_weight, linear_probe
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(run_dir, resume))
    steps = trainer.state.global_step
    passes = steps * examples_per_step(training_args)
    history = list(trainer.state.log_history)

    def save(folder: Path) -> None:
        merge_lora(trainer.model).save_pretrained(folder)
        write_summary(folder, steps, passes, history)

    save_atomically(save, final, trainer.is_world_process_zero())
    wait_for_everyone()
    return trainer, StageOutcome(trainer.model, steps, passes, history)


def run_stage2(
    prepared: Prepared, stage1: StageOutcome, callbacks: Sequence[TrainerCallback]
) -> tuple[Any, StageOutcome]:
    """``build_classifier`` on the stage-1 encoder, then BCE training on the label space."""
    from hiercon.modeling import build_classifier

    args = prepared.args
    set_seed(args.output.seed)
    classifier = build_classifier(
        stage1.model,
        taxonomy=prepared.data.taxonomy,
        label_space=args.stage2.label_space,
        stage1=stage1.model.stage1_info() if not args.stage1.skip else {"loss": None},
    )
    return train_classifier(
        prepared,
        classifier,
        prepared.stage2_args,
        callbacks,
        args.stage2.consistency_weight,
        args.stage2.mode == "linear_probe",
        prepared.work_dir / "stage2",
    )


# ---- evaluation ---------------------------------------------------------------------------------------


def set_decision_thresholds(trainer: Any, prepared: Prepared) -> np.ndarray:
    """Per-label thresholds tuned on validation, or the fixed threshold, stored in the model config."""
    from hiercon.modeling.classifier import set_thresholds
    from hiercon.training.classifier_trainer import classifier_config

    stage2 = prepared.args.stage2
    if stage2.tune_thresholds:
        return np.asarray(trainer.tune_thresholds_on(prepared.stage_inputs["validation"]))
    thresholds = [stage2.threshold] * len(prepared.columns)
    set_thresholds(classifier_config(trainer.model), thresholds)
    return np.asarray(thresholds)


def evaluate_trainer(
    trainer: Any, prepared: Prepared, thresholds: np.ndarray, split: str
) -> tuple[dict, list]:
    scores, _ = trainer.predict_scores(prepared.stage_inputs[split])
    truth = truth_matrix(prepared.data.splits()[split])
    return score_split(scores, truth, thresholds, prepared.data.taxonomy, prepared.args.stage2.label_space)


def stage1_report(prepared: Prepared, stage1: StageOutcome, plots_dir: Path | None) -> dict[str, float]:
    """kNN metrics of the stage-1 embeddings of the test split, and their plot by taxonomy level."""
    from hiercon.training import ContrastiveDataCollator, stage1_metrics

    taxonomy = prepared.data.taxonomy
    collator = ContrastiveDataCollator(prepared.processor if hasattr(prepared.processor, "pad") else None)
    embeddings = embed(
        stage1.model, prepared.inputs["test"], collator, prepared.args.stage2.per_device_eval_batch_size
    )
    truth = truth_matrix(prepared.data.test)
    metrics = {f"stage1_{key}": value for key, value in stage1_metrics(embeddings, truth, taxonomy).items()}
    if plots_dir is not None:
        from hiercon.metrics.hierarchical import level_names
        from hiercon.plots import plot_embeddings_by_level

        levels = np.asarray(taxonomy.levels)
        per_level = [truth[:, levels == depth] for depth in range(taxonomy.num_levels)]
        names = [
            [taxonomy.label(i) for i in np.flatnonzero(levels == depth)]
            for depth in range(taxonomy.num_levels)
        ]
        plot_embeddings_by_level(
            embeddings,
            per_level,
            level_names(taxonomy),
            plots_dir / "embeddings_by_level.png",
            label_names_per_level=names,
        )
    return metrics


# ---- the final folder ---------------------------------------------------------------------------------


def replace_folder(staging: Path, final: Path) -> None:
    """Rename the complete ``staging`` folder to ``final``, replacing an older one."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)


def write_final_folder(
    prepared: Prepared,
    trainer: Any,
    stage1: StageOutcome,
    stage2: StageOutcome,
    results: dict[str, Any],
    per_label: list[dict[str, object]],
) -> Path:
    """Model, processor, metrics, per-label table, plots and card, written aside and renamed into place."""
    from hiercon.metrics.report import write_evaluation
    from hiercon.modeling.classifier import merge_lora

    final = prepared.output_dir
    staging = final.with_name(f".{final.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    merge_lora(trainer.model).save_pretrained(staging)
    prepared.processor.save_pretrained(staging)
    write_evaluation(staging, results["test"], per_label)
    (staging / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    if prepared.args.output.plots:
        write_plots(staging, per_label, stage1, stage2, prepared.work_dir / "plots")
    write_recipe_card(staging, prepared, merge_lora(trainer.model).config, results, per_label)
    replace_folder(staging, final)
    return final


def write_plots(
    folder: Path, per_label: list[dict[str, object]], stage1: StageOutcome, stage2: StageOutcome, extra: Path
) -> None:
    from hiercon.plots import plot_per_label_f1, plot_training_curves

    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    plot_per_label_f1(per_label, plots / "per_label_f1.png")
    if stage1.log_history:
        plot_training_curves(stage1.log_history, plots / "training_curves_stage1.png")
    if stage2.log_history:
        plot_training_curves(stage2.log_history, plots / "training_curves_stage2.png")
    for image in sorted(extra.glob("*.png")) if extra.is_dir() else []:
        shutil.copy2(image, plots / image.name)


def push(prepared: Prepared, folder: Path) -> str | None:
    """Upload the final folder; a failure leaves it in place and says how to retry."""
    from hiercon.hub import PushError, push_model_folder

    output = prepared.args.output
    try:
        result = push_model_folder(folder, output.hub_model_id, private=output.hub_private)
    except PushError as error:
        print(str(error))
        return None
    return result.repo_url


# ---- the whole run ------------------------------------------------------------------------------------


def run_recipe(args: RecipeArguments, callbacks: Sequence[TrainerCallback] = ()) -> RecipeResult:
    """Run the two-stage recipe end to end (see the module docstring)."""
    from hiercon.recipe.baseline import run_baseline

    started = time.perf_counter()
    prepared = prepare(args)
    open_work_dir(prepared)
    main = is_main_process()
    stage1 = run_stage1(prepared, callbacks)
    trainer, stage2 = run_stage2(prepared, stage1, callbacks)
    thresholds = set_decision_thresholds(trainer, prepared)
    validation_metrics, _ = evaluate_trainer(trainer, prepared, thresholds, "validation")
    test_metrics, per_label = evaluate_trainer(trainer, prepared, thresholds, "test")
    plots_dir = prepared.work_dir / "plots" if args.output.plots else None
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
    stage1_metrics = stage1_report(prepared, stage1, plots_dir) if main and not args.stage1.skip else {}
    baseline_metrics = None
    comparison = None
    if args.output.compare_baseline:
        budget = stage1.encoder_passes + stage2.encoder_passes
        baseline_metrics = run_baseline(prepared, budget, callbacks)
        comparison = comparison_table(test_metrics, baseline_metrics)
    seconds = time.perf_counter() - started
    results = {
        "test": test_metrics,
        "validation": validation_metrics,
        "stage1": stage1_metrics,
        "baseline": baseline_metrics,
        "comparison_markdown": comparison,
        "budget": {
            "stage1_steps": stage1.steps,
            "stage2_steps": stage2.steps,
            "encoder_passes": stage1.encoder_passes + stage2.encoder_passes,
        },
        "seconds": seconds,
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


def summary_text(result: RecipeResult) -> str:
    """What the scripts print at the end of a run."""
    metrics = result.metrics
    lines = [
        f"Model folder: {result.output_dir}",
        f"Test micro F1 {metrics['micro_f1']:.4f}, macro F1 {metrics['macro_f1']:.4f}, mAP {metrics['map']:.4f}, "
        f"hierarchical F1 {metrics['hierarchical_f1']:.4f}, consistency {metrics['consistency_rate']:.4f}",
    ]
    if result.comparison:
        lines += ["", result.comparison]
    minutes, seconds = divmod(result.seconds, 60)
    lines.append(f"Total time: {int(minutes)} min {seconds:.0f} s")
    if result.pushed_url:
        lines.append(f"Pushed to {result.pushed_url}")
    return "\n".join(lines)


def ceil_div(numerator: int, denominator: int) -> int:
    return max(1, math.ceil(numerator / denominator))


def stage1_folder(args: RecipeArguments) -> Path:
    return _default_work_dir(args.output) / "stage1" / "final"


def run_stage1_only(args: RecipeArguments) -> Path:
    """Stage 1 alone (``recipes/stage1.py``): the contrastive encoder saved in ``<work_dir>/stage1/final``."""
    prepared = prepare(args)
    open_work_dir(prepared)
    run_stage1(prepared, ())
    return stage1_folder(args)


def require_stage1(args: RecipeArguments) -> None:
    """Refuse to start stage 2 alone without a finished stage 1."""
    folder = stage1_folder(args)
    if not args.stage1.skip and not (folder / STAGE_SUMMARY).is_file():
        raise ConfigError(f"no finished stage 1 in {folder}; run recipes/stage1.py with this config first")
