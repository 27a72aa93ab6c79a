"""The ``hiercon`` command: train, evaluate, predict and push."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import hub_server
import pytest
from recipe_toy import GROUPS, toy_config
from transformers import AutoTokenizer, pipeline

from hiercon import MultiLabelPredictor
from hiercon.cli import main

fake_hub = hub_server.fake_hub


# About 3,000 tokens: far beyond the tiny BERT's 64 position embeddings and the training max_length 16.
LONG_TEXT = " ".join(["happy", "sad", "angry"] * 1000)
TRAIN_WARNINGS: list[str] = []


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy run with the baseline; the warnings it raised are kept in ``TRAIN_WARNINGS``."""
    root = tmp_path_factory.mktemp("cli")
    settings = {"max_steps": 3, "save_steps": 3}
    stage2 = {**settings, "eval_strategy": "steps", "eval_steps": 1}
    config = toy_config(root, stage1=settings, stage2=stage2, output={"compare_baseline": True})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", str(config), "--stage2.learning_rate", "2e-3"]) == 0
    TRAIN_WARNINGS[:] = [str(warning.message) for warning in caught]
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
    printed = capsys.readouterr().out
    assert "micro_f1:" in printed and "consistent/macro_f1:" in printed
    evaluated = json.loads(output.read_text())
    recorded = json.loads((trained / "model" / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "consistent/macro_f1", "map", "hierarchical_f1"):
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


def test_predict_repairs_scores_on_request(trained, capsys, monkeypatch):
    from hiercon.inference import MultiLabelPredictor

    built = []
    original = MultiLabelPredictor.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        built.append(original(cls, *args, **kwargs))
        return built[-1]

    monkeypatch.setattr(MultiLabelPredictor, "from_pretrained", classmethod(spy))
    texts = ["happy glad joy", "sad cry", "angry mad"]

    def labels(*flags: str) -> list[set[str]]:
        capsys.readouterr()
        assert main(["predict", str(trained / "model"), *texts, "--json", *flags]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        return [{entry["label"] for entry in line["labels"]} for line in lines]

    closed, repaired = labels(), labels("--repair-scores")
    assert [predictor.repair_scores for predictor in built] == [False, True]
    # capping scores by their ancestors' can only drop labels
    assert all(few <= many for few, many in zip(repaired, closed))


def test_a_cpu_run_warns_nothing_about_pinned_memory(trained):
    assert not [message for message in TRAIN_WARNINGS if "pin_memory" in message]


def test_every_folder_carries_a_tokenizer_bounded_by_the_training_max_length(trained):
    work = trained / "model-work"
    folders = [trained / "model", work / "stage1" / "final", work / "stage2" / "final", work / "baseline" / "final"]
    for folder in folders:
        assert AutoTokenizer.from_pretrained(folder).model_max_length == 16, folder


def test_long_texts_predict_through_the_predictor_the_command_and_the_pipeline(trained, capsys):
    folder = str(trained / "model")
    predictor = MultiLabelPredictor.from_pretrained(folder)
    assert predictor.max_length == 16
    assert len(predictor.predict_proba([LONG_TEXT, "sad cry"])) == 2
    assert MultiLabelPredictor.from_pretrained(folder, max_length=48).max_length == 48
    assert main(["predict", folder, LONG_TEXT, "--json"]) == 0
    assert main(["predict", folder, LONG_TEXT, "--max-length", "48", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["input"] for line in lines] == [LONG_TEXT, LONG_TEXT]
    classify = pipeline("text-classification", model=folder)
    scores = classify(LONG_TEXT, top_k=None, truncation=True)  # the README's call
    assert len(scores) == 7 and all(0 <= entry["score"] <= 1 for entry in scores)
    with pytest.raises((RuntimeError, IndexError)):
        classify(LONG_TEXT, top_k=None)  # untruncated, the text overruns the position embeddings


def test_predict_refuses_a_max_length_below_one(trained, capsys):
    assert main(["predict", str(trained / "model"), "sad", "--max-length", "0"]) == 2
    assert "max_length must be a positive integer" in capsys.readouterr().err


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
