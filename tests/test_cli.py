"""The ``hiercon`` command: train, evaluate, predict and push."""

from __future__ import annotations

import json
import subprocess
import sys

import hub_server
import pytest
from recipe_toy import GROUPS, toy_config

from hiercon.cli import main

fake_hub = hub_server.fake_hub


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    settings = {"max_steps": 3, "save_steps": 3}
    config = toy_config(root, stage1=settings, stage2=settings)
    assert main(["train", str(config), "--stage2.learning_rate", "2e-3"]) == 0
    return root


def test_train_applies_overrides_and_writes_the_folder(trained):
    folder = trained / "model"
    assert (folder / "model.safetensors").is_file()
    record = json.loads((trained / "model-work" / "recipe.json").read_text())
    assert record["stage2.learning_rate"] == pytest.approx(2e-3)


def test_evaluate_reproduces_the_recipe_test_metrics(trained, tmp_path, capsys):
    output = tmp_path / "eval.json"
    status = main(
        [
            "evaluate",
            str(trained / "model"),
            "--data",
            str(trained / "data"),
            "--split",
            "test",
            "--max-length",
            "16",
            "--output",
            str(output),
        ]
    )
    assert status == 0
    assert "micro_f1:" in capsys.readouterr().out
    evaluated = json.loads(output.read_text())
    recorded = json.loads((trained / "model" / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "map", "hierarchical_f1"):
        assert evaluated["metrics"][key] == pytest.approx(recorded[key])
    assert len(evaluated["per_label"]) == 7


def test_evaluate_names_a_missing_column(trained, capsys):
    status = main(
        ["evaluate", str(trained / "model"), "--data", str(trained / "data"), "--label-columns", "tags"]
    )
    assert status == 2
    assert "column 'tags' is missing from the test split" in capsys.readouterr().err


def test_predict_prints_labels_of_each_text(trained, capsys):
    assert main(["predict", str(trained / "model"), "happy glad joy", "sad cry", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["input"] for line in lines] == ["happy glad joy", "sad cry"]
    known = set(GROUPS) | {"positive", "negative", "ambiguous"}
    assert all(
        entry["label"] in known and 0 <= entry["score"] <= 1 for line in lines for entry in line["labels"]
    )


def test_push_and_failed_push(trained, fake_hub, capsys):
    assert main(["push", str(trained / "model"), "--repo-id", "tester/cli-model"]) == 0
    assert "Pushed to" in capsys.readouterr().out
    assert "model.safetensors" in fake_hub.storage.files("tester/cli-model")
    fake_hub.stop()
    assert main(["push", str(trained / "model"), "--repo-id", "tester/cli-model", "--private"]) == 1
    assert "hiercon push" in capsys.readouterr().err


def test_train_errors_exit_with_status_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "absent.yaml")]) == 2
    assert "config file" in capsys.readouterr().err
    config = toy_config(tmp_path)
    assert main(["train", str(config), "--stage1.learnig_rate", "1e-3"]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().err


def test_console_entry_point_prints_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "hiercon.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("train", "evaluate", "predict", "push"))
