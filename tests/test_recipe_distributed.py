"""The recipe script under ``torchrun --nproc_per_node 2`` (gloo, CPU): both stages train in two
processes and the main process alone writes a complete model folder."""

from __future__ import annotations

import json

import pytest
from distributed_utils import REPO, run_script, torchrun_command
from recipe_toy import toy_config


@pytest.mark.slow
def test_two_process_torchrun_run_of_the_recipe(tmp_path):
    settings = {"max_steps": 3, "save_steps": 2, "per_device_train_batch_size": 4}
    config = toy_config(tmp_path, stage1=settings, stage2=settings, output={"use_cpu": True})
    command = [*torchrun_command(2), str(REPO / "recipes" / "two_stage.py"), str(config)]
    result = run_script(command, cwd=tmp_path)
    assert result.stdout.count("Model folder:") == 1  # printed by the main process only

    folder = tmp_path / "model"
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    budget = json.loads((folder / "results.json").read_text())["budget"]
    # Two processes of 4 examples per step: stage 1 with 2 views, stage 2 with one pass per example.
    assert budget == {
        "stage2_mode": "full", "stage1_steps": 3, "stage2_steps": 3, "encoder_passes": 3 * 4 * 2 * 2 + 3 * 4 * 2
    }
