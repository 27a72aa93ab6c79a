"""Two CPU processes (torchrun, gloo) train stage 1 with gathered negatives and match one process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from distributed_utils import run_script, torchrun_command
from tiny_models import save_tiny_bert

SCRIPT = Path(__file__).resolve().parent / "scripts" / "stage1_ddp.py"


def _run(command: list[str], output: Path) -> dict:
    run_script(command)
    return json.loads(output.read_text())


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_first_step(tmp_path):
    model_dir = save_tiny_bert(tmp_path / "bert", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    single_out, ddp_out = tmp_path / "single" / "out.json", tmp_path / "ddp" / "out.json"
    single_out.parent.mkdir()
    ddp_out.parent.mkdir()
    single = _run([sys.executable, str(SCRIPT), str(model_dir), str(single_out), "8"], single_out)
    torchrun = torchrun_command(2)
    ddp = _run([*torchrun, str(SCRIPT), str(model_dir), str(ddp_out), "4"], ddp_out)

    assert single["world_size"] == 1 and ddp["world_size"] == 2
    assert single["key_counts"][0] == 8
    assert ddp["key_counts"][0] == 8  # 4 local examples + 4 gathered from the other process
    assert ddp["loss"] == pytest.approx(single["loss"], abs=1e-5)
    assert torch.allclose(torch.tensor(ddp["embeddings"]), torch.tensor(single["embeddings"]), atol=1e-5)
