"""The recipe script under ``torchrun --nproc_per_node 2`` (gloo, CPU): both stages train in two
processes and the main process alone writes a complete model folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_toy import toy_config

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_torchrun_run_of_the_recipe(tmp_path):
    settings = {"max_steps": 3, "save_steps": 2, "per_device_train_batch_size": 4}
    config = toy_config(tmp_path, stage1=settings, stage2=settings, output={"use_cpu": True})
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(REPO / "recipes" / "two_stage.py"),
        str(config),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("Model folder:") == 1  # printed by the main process only

    folder = tmp_path / "model"
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    budget = json.loads((folder / "results.json").read_text())["budget"]
    # Two processes of 4 examples per step: stage 1 with 2 views, stage 2 with one pass per example.
    assert budget == {"stage1_steps": 3, "stage2_steps": 3, "encoder_passes": 3 * 4 * 2 * 2 + 3 * 4 * 2}
