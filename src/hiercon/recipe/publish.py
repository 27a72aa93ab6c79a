"""Publishing a run: the final model folder (model, processor, metrics, per-label table, plots and
model card, written to a temporary sibling and renamed into place when complete), the optional push
to the Hub, and the summary the scripts print."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hiercon.metrics.evaluation import describe_metric
from hiercon.modeling.adapters import merge_lora
from hiercon.recipe.card import write_recipe_card
from hiercon.recipe.prepare import Prepared
from hiercon.recipe.stages import StageOutcome
from hiercon.recipe.workdir import replace_folder

RESULTS_FILE = "results.json"


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

    final = prepared.output_dir
    staging = final.with_name(f".{final.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = merge_lora(trainer.model)
    model.save_pretrained(staging)
    prepared.processor.save_pretrained(staging)
    write_evaluation(staging, results["test"], per_label)
    (staging / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    if prepared.args.output.plots:
        write_plots(staging, per_label, stage1, stage2, prepared.work_dir / "plots")
    write_recipe_card(staging, prepared, model.config, results, per_label, trainer.model_card_data)
    replace_folder(staging, final)
    return final


def write_plots(
    folder: Path, per_label: list[dict[str, object]], stage1: StageOutcome, stage2: StageOutcome, extra: Path
) -> None:
    """Per-label F1 and training curves in ``folder/plots``, plus the images already in ``extra``."""
    from hiercon.plots import has_training_curves, plot_per_label_f1, plot_training_curves

    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    plot_per_label_f1(per_label, plots / "per_label_f1.png")
    if has_training_curves(stage1.log_history):
        plot_training_curves(stage1.log_history, plots / "training_curves_stage1.png")
    if has_training_curves(stage2.log_history):
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


def summary_text(result: RecipeResult) -> str:
    """What the scripts print at the end of a run."""
    metrics = result.metrics
    levels = [key for key in metrics if key.startswith("level_") and key.endswith("/macro_f1")]
    lines = [
        f"Model folder: {result.output_dir}",
        f"Test, fine labels: macro F1 {metrics['macro_f1']:.4f}, micro F1 {metrics['micro_f1']:.4f}, "
        f"mAP {metrics['map']:.4f}",
    ]
    if "nodes/macro_f1" in metrics:
        lines.append(
            f"Test, all taxonomy nodes: macro F1 {metrics['nodes/macro_f1']:.4f}, hierarchical F1 "
            f"{metrics['hierarchical_f1']:.4f}, consistency {metrics['consistency_rate']:.4f}"
        )
    if levels:
        per_level = ", ".join(f"{describe_metric(key)} {metrics[key]:.4f}" for key in levels)
        lines.append(f"Test, per level: {per_level}")
    if result.comparison:
        lines += ["", result.comparison]
    minutes, seconds = divmod(result.seconds, 60)
    lines.append(f"Total time: {int(minutes)} min {seconds:.0f} s")
    if result.pushed_url:
        lines.append(f"Pushed to {result.pushed_url}")
    return "\n".join(lines)
