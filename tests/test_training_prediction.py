"""Embeddings through ``Trainer.predict`` match the model's own forward pass, in dataset order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stage1_toy import tiny_text_setup, toy_dataset, toy_taxonomy

from hiercon import ContrastiveModel
from hiercon.errors import ConfigError
from hiercon.training import ContrastiveDataCollator, predict_embeddings
from hiercon.training.prediction import embeddings_of, model_inputs_only


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path, tokenizer = tiny_text_setup(tmp_path_factory.mktemp("tiny_bert"))
    dataset = toy_dataset(tokenizer, toy_taxonomy(), count=11)
    return ContrastiveModel.from_encoder(path, projection_dim=8), tokenizer, dataset


def test_predicted_embeddings_match_the_forward_pass_in_row_order(setup) -> None:
    model, tokenizer, dataset = setup
    model.train()  # prediction switches dropout off by itself
    collator = ContrastiveDataCollator(tokenizer)
    embeddings = predict_embeddings(model, dataset, collator, batch_size=4)
    model.eval()
    with torch.no_grad():
        batch = collator([dict(row) for row in model_inputs_only(dataset)])
        expected = model(**batch).embeddings.numpy()
    assert embeddings.shape == (11, 8) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)


def test_model_inputs_only_keeps_the_named_columns(setup) -> None:
    _, _, dataset = setup
    assert "labels" not in model_inputs_only(dataset).column_names
    assert "labels" in model_inputs_only(dataset, keep=["labels"]).column_names


def test_prediction_without_embeddings_is_refused() -> None:
    class Output:
        predictions = None

    with pytest.raises(ConfigError, match="no embeddings"):
        embeddings_of(Output(), 3)
    Output.predictions = (np.zeros((2, 4)), np.zeros((2, 6)))
    with pytest.raises(ConfigError, match="for 3 rows"):
        embeddings_of(Output(), 3)
