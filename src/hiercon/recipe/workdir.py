"""The work folder of a run: its location, the run record that guards a resume, the stages' last
checkpoints, and the ``final`` folder each finished stage leaves there (written atomically, with a
summary of its steps, encoder passes and log history).

Layout::

    <work_dir>/recipe.json                               the run record
    <work_dir>/stage1/checkpoint-*/, stage1/final/       the stage-1 Trainer's checkpoints, then its model
    <work_dir>/stage2/..., <work_dir>/baseline/...       the same for stage 2 and the baseline
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers.trainer_utils import get_last_checkpoint

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import OutputArguments, RecipeArguments
from hiercon.recipe.processes import is_main_process, wait_for_everyone

STAGE_SUMMARY = "hiercon_stage.json"
RUN_RECORD = "recipe.json"
RECORDED_SECTIONS = ("model", "data", "stage1", "stage2")
UNRECORDED_KEYS = frozenset(
    {
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "preprocessing_num_workers",
        "dataloader_num_workers",
        "report_to",
    }
)


def default_work_dir(output: OutputArguments) -> Path:
    """``output.work_dir``, else ``<output_dir>-work`` beside the final folder."""
    if output.work_dir:
        return Path(output.work_dir).resolve()
    final = Path(output.output_dir).resolve()
    return final.with_name(final.name + "-work")


def stage_folder(output: OutputArguments, stage: str) -> Path:
    """Where a finished stage (``stage1``, ``stage2``, ``baseline``) keeps its model."""
    return default_work_dir(output) / stage / "final"


def run_record(args: RecipeArguments) -> dict[str, Any]:
    """The settings a resumed run must share with the run that wrote the checkpoints: everything
    that changes the trained weights (not where files go, logging or checkpoint frequency)."""
    sections = args.settings()
    sections["output"] = {"seed": args.output.seed, **args.output.training_args}
    record = {
        f"{section}.{key}": value
        for section in (*RECORDED_SECTIONS, "output")
        for key, value in sections[section].items()
        if key not in UNRECORDED_KEYS
    }
    return json.loads(json.dumps(record, default=str))


def open_work_dir(work_dir: Path, args: RecipeArguments) -> None:
    """Check that checkpoints in ``work_dir`` come from this configuration (or clear it when
    ``output.resume`` is false), then record the configuration there."""
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


def last_checkpoint(run_dir: Path, resume: bool) -> str | None:
    """The newest ``checkpoint-*`` folder of a stage to resume from, when resuming."""
    return get_last_checkpoint(str(run_dir)) if resume and run_dir.is_dir() else None


def is_finished(final: Path) -> bool:
    """Whether a stage's ``final`` folder is complete (its summary is written last)."""
    return (final / STAGE_SUMMARY).is_file()


def save_atomically(save: Callable[[Path], None], final: Path, is_main: bool) -> None:
    """Call ``save(folder)`` on a temporary folder and rename it to ``final`` (main process only)."""
    if not is_main:
        return
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save(partial)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)


def write_summary(folder: Path, steps: int, encoder_passes: int, log_history: list[dict[str, Any]]) -> None:
    """The stage summary that marks ``folder`` as finished."""
    summary = {"steps": steps, "encoder_passes": encoder_passes, "log_history": log_history}
    (folder / STAGE_SUMMARY).write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")


def read_summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / STAGE_SUMMARY).read_text(encoding="utf-8"))


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
