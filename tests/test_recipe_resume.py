"""An interrupted recipe, run again, resumes from its last checkpoint and ends where an
uninterrupted run ends (same weights, same metrics)."""

from __future__ import annotations

import pytest
import torch
from recipe_toy import toy_config
from safetensors.torch import load_file
from transformers import TrainerCallback

from hiercon.errors import ConfigError
from hiercon.recipe.config import load_recipe
from hiercon.recipe.runner import run_recipe

STAGE_SETTINGS = {"max_steps": 6, "save_steps": 2, "logging_steps": 1}


class Interrupt(RuntimeError):
    pass


class StopAt(TrainerCallback):
    """Raises at the end of optimizer step ``step`` of the stage whose run folder ends with ``stage``."""

    def __init__(self, stage: str, step: int) -> None:
        self.stage, self.step = stage, step

    def on_step_end(self, args, state, control, **kwargs):
        if args.output_dir.endswith(self.stage) and state.global_step == self.step:
            raise Interrupt(f"interrupted {self.stage} at step {self.step}")


def recipe(root):
    return load_recipe(toy_config(root, stage1=STAGE_SETTINGS, stage2=STAGE_SETTINGS))


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    return run_recipe(recipe(root))


@pytest.mark.parametrize(("stage", "step"), [("stage1", 3), ("stage2", 5)])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, uninterrupted, stage, step):
    arguments = recipe(tmp_path)
    with pytest.raises(Interrupt):
        run_recipe(arguments, callbacks=[StopAt(stage, step)])
    assert not (tmp_path / "model").exists()
    work = tmp_path / "model-work" / stage
    assert (work / f"checkpoint-{step - 1}").is_dir() and not (work / "final").exists()

    resumed = run_recipe(recipe(tmp_path))
    expected, got = weights(uninterrupted.output_dir), weights(resumed.output_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    assert resumed.metrics == pytest.approx(uninterrupted.metrics)


def test_resume_refuses_a_work_dir_of_another_configuration(tmp_path):
    arguments = recipe(tmp_path)
    with pytest.raises(Interrupt):
        run_recipe(arguments, callbacks=[StopAt("stage1", 3)])
    changed = load_recipe(
        toy_config(tmp_path, stage1={**STAGE_SETTINGS, "learning_rate": 5e-4}, stage2=STAGE_SETTINGS)
    )
    with pytest.raises(ConfigError, match=r"stage1.learning_rate"):
        run_recipe(changed)
    changed.output.resume = False
    assert run_recipe(changed).output_dir.is_dir()
