"""Every stage-1 loss the recipe offers runs through ``hiercon train`` (stage 1 and stage 2) with a tiny
text model and a tiny vision model, wired with what it needs (label space, taxonomy levels, cluster
labels, prototypes); the hierarchical and ranked losses on both label spaces."""

from __future__ import annotations

import json

import pytest
from recipe_toy import toy_config, toy_image_config

from hiercon.cli import main as cli_main
from hiercon.errors import ConfigError
from hiercon.recipe.config import load_recipe
from hiercon.recipe.loss_registry import LOSSES
from hiercon.recipe.workdir import STAGE_SUMMARY

SHORT = {"max_steps": 2, "per_device_train_batch_size": 8, "save_steps": 2, "logging_steps": 1}


def trained_metrics(config) -> dict:
    """Train through the console command; stage 1 must have logged a finite, positive loss."""
    assert cli_main(["train", str(config)]) == 0
    summary = json.loads((config.parent / "model-work" / "stage1" / "final" / STAGE_SUMMARY).read_text())
    losses = [entry["loss"] for entry in summary["log_history"] if "loss" in entry]
    assert losses and all(0.0 < loss < float("inf") for loss in losses)
    return json.loads((config.parent / "model" / "metrics.json").read_text())


def stage1_loss_name(config) -> str:
    record = json.loads((config.parent / "model" / "config.json").read_text())["hiercon"]
    return record["stage1"]["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains_a_text_model(tmp_path, loss) -> None:
    config = toy_config(tmp_path, stage1={"loss": loss, **SHORT}, stage2={**SHORT, "max_steps": 1})
    metrics = trained_metrics(config)
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert stage1_loss_name(config) == LOSSES[loss].class_name


@pytest.mark.slow
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_trains_a_vision_model(tmp_path, loss) -> None:
    stage1 = {"loss": loss, **SHORT, "sampler": "random", "num_views": None}
    path = toy_image_config(tmp_path, stage1=stage1, stage2={**SHORT, "max_steps": 1})
    metrics = trained_metrics(path)
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert stage1_loss_name(path) == LOSSES[loss].class_name


@pytest.mark.slow
@pytest.mark.parametrize("label_space", ["nodes", "leaves"])
@pytest.mark.parametrize("loss", ["ranked", "himulcone", "cl_infonce", "hcsc"])
def test_structure_losses_on_both_label_spaces(tmp_path, loss, label_space) -> None:
    config = toy_config(
        tmp_path, stage1={"loss": loss, **SHORT}, stage2={**SHORT, "max_steps": 1, "label_space": label_space}
    )
    metrics = trained_metrics(config)
    width = 4 if label_space == "leaves" else 7
    record = json.loads((tmp_path / "model" / "config.json").read_text())
    assert len(record["id2label"]) == width and record["hiercon"]["label_space"] == label_space
    assert "nodes/macro_f1" in metrics


@pytest.mark.slow
@pytest.mark.parametrize(
    "clusters", [{"source": "kmeans", "n_clusters": 3}, {"source": "level", "level": 0}, {"source": "column", "column": "group"}]
)
def test_cl_infonce_cluster_sources(tmp_path, clusters) -> None:
    config = toy_config(tmp_path, stage1={"loss": "cl_infonce", "clusters": clusters, **SHORT}, stage2={**SHORT, "max_steps": 1})
    if clusters["source"] == "column":
        for split in ("train", "validation", "test"):
            path = tmp_path / "data" / f"{split}.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            path.write_text("".join(json.dumps({**row, "group": row["labels"][0][:1]}) + "\n" for row in rows))
    trained_metrics(config)


def test_recommended_settings_fill_what_the_config_leaves_out(tmp_path) -> None:
    config = toy_config(tmp_path, stage1={"loss": "hcsc"})
    stage1 = load_recipe(config).stage1
    assert stage1.temperature == LOSSES["hcsc"].temperature and stage1.momentum == LOSSES["hcsc"].momentum
    assert stage1.num_views == 2 and stage1.learning_rate == 1e-3  # the toy config sets the rate
    with pytest.raises(ConfigError, match="stage1.clusters.source must be one of"):
        load_recipe(toy_config(tmp_path, stage1={"loss": "cl_infonce", "clusters": {"source": "graph"}}))
    with pytest.raises(ConfigError, match="did you mean 'hcsc'"):
        load_recipe(toy_config(tmp_path, stage1={"loss": "hcs"}))
