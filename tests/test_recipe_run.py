"""The whole two-stage recipe on a toy config: final folder, pipeline, baseline table, push."""

from __future__ import annotations

import json

import hub_server
import pytest
from recipe_toy import toy_config, toy_image_config
from transformers import pipeline

from hiercon.errors import ConfigError
from hiercon.recipe import main
from hiercon.recipe.config import load_recipe
from hiercon.recipe.runner import run_recipe
from hiercon.recipe.stages import matched_steps

fake_hub = hub_server.fake_hub


def test_recipe_end_to_end_writes_a_folder_that_pipeline_loads(tmp_path, capsys):
    config = toy_config(tmp_path, output={"compare_baseline": True, "plots": True})
    assert main([str(config)]) == 0
    printed = capsys.readouterr().out
    assert "| test metric | hiercon (two-stage) | BCE baseline | difference |" in printed
    assert "| macro F1 (fine labels) |" in printed and "Test, fine labels: macro F1" in printed
    assert "Test, per level: " in printed
    assert "Total time:" in printed

    folder = tmp_path / "model"
    names = {path.name for path in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "metrics.json",
        "results.json",
        "README.md",
    } <= names
    card = (folder / "README.md").read_text()
    assert "BCE baseline" in card and "plots/per_label_f1.png" in card
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    assert {p.name for p in (folder / "plots").iterdir()} >= {
        "per_label_f1.png",
        "training_curves_stage1.png",
        "training_curves_stage2.png",
        "embeddings_by_level.png",
    }
    assert not list(tmp_path.glob(".model.partial*"))

    config_json = json.loads((folder / "config.json").read_text())
    assert config_json["problem_type"] == "multi_label_classification"
    hiercon = config_json["hiercon"]
    assert hiercon["label_space"] == "nodes" and len(hiercon["thresholds"]) == 7
    assert hiercon["taxonomy"]["labels"] and hiercon["stage1"]["loss"] == "SupConLoss"

    scores = pipeline("text-classification", model=str(folder))("happy glad joy", top_k=None)
    assert sorted(entry["label"] for entry in scores) == sorted(config_json["id2label"].values())
    assert all(0.0 <= entry["score"] <= 1.0 for entry in scores)

    results = json.loads((folder / "results.json").read_text())
    budget = results["budget"]
    assert budget["stage1_steps"] == 4 and budget["stage2_steps"] == 4
    # Stage 1: 4 steps x 8 examples x 2 views; stage 2: 4 x 8; the baseline spends the same passes.
    assert budget["encoder_passes"] == 4 * 8 * 2 + 4 * 8
    assert results["baseline"]["micro_f1"] >= 0.0 and 0.0 <= results["test"]["macro_f1"] <= 1.0
    training = results["training_seconds"]
    assert set(training) == {"stage1", "stage2", "baseline"} and all(value >= 0 for value in training.values())
    assert sum(training.values()) <= results["seconds"]
    baseline_summary = json.loads(
        (tmp_path / "model-work" / "baseline" / "final" / "hiercon_stage.json").read_text()
    )
    assert baseline_summary["steps"] == matched_steps(budget["encoder_passes"], 8) == 12


def test_leaves_label_space_and_fixed_threshold(tmp_path):
    config = toy_config(
        tmp_path,
        stage1={"skip": True},
        stage2={"label_space": "leaves", "tune_thresholds": False, "threshold": 0.3, "mode": "linear_probe"},
    )
    result = run_recipe(load_recipe(config))
    written = json.loads((result.output_dir / "config.json").read_text())
    assert sorted(written["id2label"].values()) == ["anger", "curiosity", "joy", "sadness"]
    assert written["hiercon"]["thresholds"] == [0.3] * 4
    assert result.metrics["consistency_rate"] == 1.0  # leaf predictions lifted to their ancestors
    stage1 = json.loads((result.output_dir / "results.json").read_text())["stage1"]
    assert 0.0 < stage1["stage1_mean_pairwise_cosine"] < 1.0  # the plain encoder, reported as a baseline


def test_bad_config_fails_before_anything_is_written(tmp_path, capsys):
    config = toy_config(tmp_path, data={"label_columns": ["emotion"]})
    assert main([str(config)]) == 2
    assert "column 'emotion' is missing from the train split" in capsys.readouterr().err
    assert not (tmp_path / "model").exists() and not (tmp_path / "model-work").exists()
    config = toy_config(tmp_path, data={"label_columns": ["labels"]}, stage1={"loss": "supcon_jacard"})
    with pytest.raises(ConfigError, match="unknown stage1.loss 'supcon_jacard'"):
        run_recipe(load_recipe(config))
    config = toy_config(tmp_path, stage1={"loss": "supcon", "loss_kwargs": {"temprature": 0.2}})
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        run_recipe(load_recipe(config))
    assert not (tmp_path / "model-work").exists()


def test_push_through_the_loopback_hub(tmp_path, fake_hub, capsys):
    config = toy_config(
        tmp_path, stage1={"skip": True}, output={"push_to_hub": True, "hub_model_id": "tester/toy-hiercon"}
    )
    result = run_recipe(load_recipe(config))
    assert result.pushed_url is not None
    files = fake_hub.storage.files("tester/toy-hiercon")
    assert {"config.json", "model.safetensors", "metrics.json"} <= set(files)
    scores = pipeline("text-classification", model="tester/toy-hiercon")("sad cry", top_k=None)
    assert len(scores) == 7


def test_failed_push_keeps_the_folder_and_says_how_to_retry(tmp_path, fake_hub, capsys):
    fake_hub.stop()
    config = toy_config(
        tmp_path, stage1={"skip": True}, output={"push_to_hub": True, "hub_model_id": "tester/unreachable"}
    )
    result = run_recipe(load_recipe(config))
    assert result.pushed_url is None
    assert (result.output_dir / "model.safetensors").is_file()
    printed = capsys.readouterr().out
    assert "hiercon push" in printed and "tester/unreachable" in printed


def test_stage_scripts_split_the_run(tmp_path, capsys):
    config = toy_config(tmp_path)
    assert main([str(config)], stages="stage2") == 2
    assert "no finished stage 1" in capsys.readouterr().err
    assert main([str(config)], stages="stage1") == 0
    assert (tmp_path / "model-work" / "stage1" / "final" / "projection_head.safetensors").is_file()
    assert not (tmp_path / "model").exists()
    assert main([str(config)], stages="stage2") == 0
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_vision_recipe_from_a_saved_dataset_of_images(tmp_path):
    config = toy_image_config(tmp_path)
    result = run_recipe(load_recipe(config))
    classify = pipeline("image-classification", model=str(result.output_dir))
    from PIL import Image

    scores = classify(Image.new("RGB", (28, 28), color=(200, 200, 200)), top_k=6)
    assert sorted(entry["label"] for entry in scores) == [
        "bag",
        "clothes",
        "goods",
        "sandal",
        "shirt",
        "trouser",
    ]


def test_head_learning_rate_gets_its_own_param_groups(tmp_path):
    from tiny_models import tiny_bert_config
    from transformers import BertForSequenceClassification, TrainingArguments

    from hiercon.recipe.optim import with_head_learning_rate
    from hiercon.training import ClassifierTrainer

    config = tiny_bert_config(50, num_labels=3, problem_type="multi_label_classification")
    model = BertForSequenceClassification(config)
    arguments = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, report_to="none")
    trainer = with_head_learning_rate(ClassifierTrainer)(head_learning_rate=1e-2, model=model, args=arguments)
    groups = trainer.create_optimizer().param_groups
    head = {id(model.classifier.weight), id(model.classifier.bias)}
    for group in groups:
        ids = {id(parameter) for parameter in group["params"]}
        assert group["lr"] == (1e-2 if ids & head else 1e-4)
        assert not ids & head or ids <= head
    assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
