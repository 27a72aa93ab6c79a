"""The one-stage joint mode: BCE plus a contrastive loss on the classifier's own features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_classifiers import EMOTION_TEXTS, emotion_dataset, tiny_classifier
from tiny_models import quick_args, save_tiny_bert
from transformers import AutoTokenizer, pipeline

from hiercon import JointClassifierTrainer
from hiercon.errors import ConfigError
from hiercon.losses import ClInfoNCELoss, RegLoss, SupConLoss
from hiercon.modeling.classifier import read_hiercon_config


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(
        tmp_path_factory.mktemp("bert"), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )


@pytest.fixture(scope="module")
def dataset(bert_dir):
    return emotion_dataset(AutoTokenizer.from_pretrained(bert_dir))


def _args(tmp_path, **overrides):
    settings = dict(
        per_device_train_batch_size=12,
        per_device_eval_batch_size=12,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        max_steps=20,
        logging_steps=1,
        seed=0,
    )
    return quick_args(tmp_path, **{**settings, **overrides})


def test_joint_training_lowers_both_terms_and_saves_a_plain_classifier(bert_dir, dataset, tmp_path):
    classifier = tiny_classifier(bert_dir)
    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    trainer = JointClassifierTrainer(
        classifier,
        _args(tmp_path),
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
        contrastive_loss=SupConLoss(temperature=0.1),
        contrastive_weight=0.5,
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.75 * before, (before, after)
    logged = [entry for entry in trainer.state.log_history if "loss_contrastive" in entry]
    assert logged and all("loss_bce" in entry for entry in logged)
    assert logged[-1]["loss_contrastive"] < logged[0]["loss_contrastive"]

    record = read_hiercon_config(classifier.config)["stage2"]
    assert record["mode"] == "joint" and record["freeze_encoder"] is False
    assert record["contrastive"]["loss"] == "SupConLoss" and record["contrastive"]["weight"] == 0.5

    folder = tmp_path / "saved"
    trainer.save_model(str(folder))
    scores, _ = trainer.predict_scores(dataset)
    by_label = {
        entry["label"]: entry["score"]
        for entry in pipeline("text-classification", model=str(folder))(EMOTION_TEXTS[0][0], top_k=None)
    }
    names = [classifier.config.id2label[i] for i in range(len(by_label))]
    np.testing.assert_allclose([by_label[name] for name in names], scores[0], atol=1e-5)


def test_loss_parameters_train_with_two_views(bert_dir, dataset, tmp_path):
    classifier = tiny_classifier(bert_dir)
    loss = RegLoss(num_labels=6, embedding_dim=classifier.config.hidden_size)
    prototypes_before = [p.detach().clone() for p in loss.parameters()]
    assert prototypes_before
    trainer = JointClassifierTrainer(
        classifier, _args(tmp_path, max_steps=2), train_dataset=dataset, contrastive_loss=loss, views=2
    )
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(prototypes_before, loss.parameters()))
    assert read_hiercon_config(classifier.config)["stage2"]["contrastive"]["views"] == 2


def test_cluster_fed_losses_and_wrong_modes_are_refused(bert_dir, dataset, tmp_path):
    with pytest.raises(ConfigError, match="ClInfoNCELoss is fed with cluster ids"):
        JointClassifierTrainer(
            tiny_classifier(bert_dir), _args(tmp_path), train_dataset=dataset, contrastive_loss=ClInfoNCELoss()
        )
    with pytest.raises(ConfigError, match="joint"):
        JointClassifierTrainer(
            tiny_classifier(bert_dir), _args(tmp_path), contrastive_loss=SupConLoss(), freeze_encoder=True
        )
    with pytest.raises(ConfigError, match="contrastive_weight"):
        JointClassifierTrainer(
            tiny_classifier(bert_dir), _args(tmp_path), contrastive_loss=SupConLoss(), contrastive_weight=-1
        )
