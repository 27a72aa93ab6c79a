"""Every stage-2 mode through ``hiercon train`` on the toy recipe: budget, record, card and pipeline."""

from __future__ import annotations

import json

import pytest
from recipe_toy import SPLIT_SIZES, toy_config
from transformers import pipeline

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import Stage2Arguments
from hiercon.recipe.config import load_recipe
from hiercon.recipe.runner import run_recipe
from hiercon.recipe.stages import matched_steps

TRAIN = SPLIT_SIZES["train"]


def _outputs(result):
    folder = result.output_dir
    config = json.loads((folder / "config.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    card = (folder / "README.md").read_text()
    return config["hiercon"], results, card


def test_head_mode_fits_the_head_and_the_baseline_gets_the_same_passes(tmp_path):
    config = toy_config(tmp_path, stage2={"mode": "head"}, output={"compare_baseline": True, "plots": True})
    result = run_recipe(load_recipe(config))
    hiercon, results, card = _outputs(result)
    plots = result.output_dir / "plots"  # a fitted head logs no training curve: none is drawn for stage 2
    assert (plots / "training_curves_stage1.png").is_file() and not (plots / "training_curves_stage2.png").exists()
    budget = results["budget"]
    assert results["stage2_mode"] == budget["stage2_mode"] == "head"
    assert budget["stage2_steps"] == 0
    # Stage 1: 4 steps x 8 examples x 2 views; stage 2: one forward pass per training example.
    assert budget["encoder_passes"] == 4 * 8 * 2 + TRAIN
    summary = json.loads((tmp_path / "model-work" / "baseline" / "final" / "hiercon_stage.json").read_text())
    assert summary["steps"] == matched_steps(budget["encoder_passes"], 8)
    stage2 = hiercon["stage2"]
    assert stage2["mode"] == "head" and stage2["freeze_encoder"] is True and stage2["head_l2"] == 3.0
    assert stage2["head_fit"]["converged"] is True
    rule = hiercon["threshold_rule"]
    assert rule["min_positives"] == 5 and rule["fallback"] == "level" and rule["split"] == "validation"
    assert rule["shrinkage"] == 5.0 and "with weight 5 / (n + 5)" in card and "| threshold_shrinkage | 5.0" in card
    assert "fewer than 5 positives" in card and "| mode | head |" in card and "| head_l2 | 3.0" in card
    assert "| head_class_weight | balanced" in card and stage2["head_class_weight"] == "balanced"
    assert "contrastive_weight" not in card and "head_fit.converged" in card
    scores = pipeline("text-classification", model=str(result.output_dir))("happy glad joy", top_k=None)
    assert len(scores) == len(hiercon["thresholds"])


def test_head_then_full_fits_then_fine_tunes(tmp_path):
    config = toy_config(tmp_path, stage1={"skip": True}, stage2={"mode": "head_then_full"})
    result = run_recipe(load_recipe(config))
    hiercon, results, _ = _outputs(result)
    assert results["budget"]["stage2_steps"] == 4
    assert results["budget"]["encoder_passes"] == 4 * 8 + TRAIN
    assert hiercon["stage2"]["mode"] == "head_then_full" and "head_fit" in hiercon["stage2"]
    assert hiercon["stage2"]["freeze_encoder"] is False


def test_joint_mode_trains_one_stage_with_the_stage1_loss(tmp_path):
    config = toy_config(tmp_path, stage2={"mode": "joint", "contrastive_weight": 0.3})
    result = run_recipe(load_recipe(config))
    hiercon, results, card = _outputs(result)
    budget = results["budget"]
    assert budget["stage1_steps"] == 0 and not (tmp_path / "model-work" / "stage1" / "final").exists()
    # Stage 2 sees every example in stage1.num_views = 2 dropout views.
    assert budget["stage2_steps"] == 4 and budget["encoder_passes"] == 4 * 8 * 2
    contrastive = hiercon["stage2"]["contrastive"]
    assert contrastive["loss"] == "SupConLoss" and contrastive["weight"] == 0.3 and contrastive["views"] == 2
    assert hiercon["stage1"]["loss"] is None
    assert "| contrastive.loss | SupConLoss |" in card and "| contrastive_weight | 0.3" in card
    assert "khosla2020supervised" in card
    history = json.loads((tmp_path / "model-work" / "stage2" / "final" / "hiercon_stage.json").read_text())
    assert any("loss_contrastive" in entry for entry in history["log_history"])


def test_joint_mode_refuses_cluster_fed_losses(tmp_path):
    config = toy_config(tmp_path, stage1={"loss": "cl_infonce"}, stage2={"mode": "joint"})
    with pytest.raises(ConfigError, match="'cl_infonce' is fed with clusters"):
        load_recipe(config)


def test_recipe_defaults_are_the_trainers():
    from hiercon.metrics.thresholds import DEFAULT_MIN_POSITIVES, DEFAULT_SHRINKAGE
    from hiercon.training.head_fit import DEFAULT_HEAD_CLASS_WEIGHT, DEFAULT_HEAD_L2
    from hiercon.training.joint_trainer import DEFAULT_CONTRASTIVE_WEIGHT

    stage2 = Stage2Arguments()
    assert stage2.head_l2 == DEFAULT_HEAD_L2
    assert stage2.head_class_weight == DEFAULT_HEAD_CLASS_WEIGHT
    assert stage2.contrastive_weight == DEFAULT_CONTRASTIVE_WEIGHT
    assert stage2.threshold_min_positives == DEFAULT_MIN_POSITIVES
    assert stage2.threshold_shrinkage == DEFAULT_SHRINKAGE
