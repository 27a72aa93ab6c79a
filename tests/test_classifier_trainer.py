"""ClassifierTrainer, stage-2 objectives and threshold tuning on a tiny BERT."""

from __future__ import annotations

import copy
import gzip
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from sklearn.metrics import f1_score
from tiny_classifiers import EMOTION_TEXTS, emotion_dataset, emotion_taxonomy, tiny_classifier
from tiny_models import quick_args, save_tiny_bert
from transformers import AutoTokenizer, TrainerCallback

from hiercon import ClassifierTrainer, LabelTaxonomy
from hiercon.errors import ConfigError, HierconError, LabelFormatError, LossInputError, UnknownLabelError
from hiercon.losses.classification import (
    AsymmetricLoss,
    BinaryCrossEntropy,
    HierarchyConsistencyPenalty,
    build_objective,
    taxonomy_edge_index,
)
from hiercon.metrics.thresholds import DEFAULT_GRID, f1_per_threshold, tune_thresholds
from hiercon.modeling.classifier import read_hiercon_config


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(
        tmp_path_factory.mktemp("bert"), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )


@pytest.fixture(scope="module")
def taxonomy():
    return emotion_taxonomy()


@pytest.fixture(scope="module")
def tokenizer(bert_dir):
    return AutoTokenizer.from_pretrained(bert_dir)


@pytest.fixture(scope="module")
def toy_dataset(tokenizer):
    return emotion_dataset(tokenizer)


def _args(tmp_path, **overrides):
    settings = dict(
        per_device_train_batch_size=4,
        per_device_eval_batch_size=16,
        learning_rate=5e-3,
        num_train_epochs=1,
        logging_steps=1,
        seed=0,
    )
    return quick_args(tmp_path, **{**settings, **overrides})


# ---- objectives ----


def test_asl_reduces_to_bce_without_focusing_or_clipping():
    logits, targets = torch.randn(5, 7), (torch.rand(5, 7) > 0.5).float()
    bce = BinaryCrossEntropy()(logits, targets)
    torch.testing.assert_close(bce, F.binary_cross_entropy_with_logits(logits, targets))
    torch.testing.assert_close(AsymmetricLoss(gamma_neg=0, gamma_pos=0, clip=0)(logits, targets), bce)


def test_asl_matches_its_equation():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    loss = AsymmetricLoss(gamma_neg=4, gamma_pos=1, clip=0.05)(logits, targets)
    p = torch.sigmoid(logits)[0]
    shifted = (p - 0.05).clamp(min=0)
    expected = (
        -(
            (1 - p[0]) * torch.log(p[0])
            + shifted[1] ** 4 * torch.log(1 - shifted[1])
            + shifted[2] ** 4 * torch.log(1 - shifted[2])
        )
        / 3
    )
    torch.testing.assert_close(loss, expected)
    easy_negative = AsymmetricLoss(clip=0.05)(torch.tensor([[-4.0]]), torch.tensor([[0.0]]))
    assert float(easy_negative) == 0.0  # sigmoid(-4) = 0.018 lies below the clip margin


def test_consistency_penalty_counts_children_above_parents(taxonomy):
    edge_index = taxonomy_edge_index(taxonomy, taxonomy.labels)
    assert edge_index.shape == (2, 4)
    penalty = HierarchyConsistencyPenalty(edge_index)
    consistent = torch.logit(torch.tensor([[0.9, 0.2, 0.8, 0.1, 0.2, 0.1]]))
    assert float(penalty(consistent)) == 0.0
    scores = torch.tensor(
        [[0.3, 0.2, 0.8, 0.1, 0.2, 0.6]]
    )  # joy 0.5 above positive, sadness 0.4 above negative
    value = penalty(torch.logit(scores).requires_grad_())
    torch.testing.assert_close(value, torch.tensor((0.5 + 0.4) / 4))
    assert taxonomy_edge_index(taxonomy, taxonomy.leaves).shape == (2, 0)


def test_objective_options_are_checked(taxonomy):
    with pytest.raises(ConfigError, match="unknown stage-2 loss"):
        build_objective("focal")
    with pytest.raises(ConfigError, match="bad options"):
        build_objective("asl", {"gamma": 2})
    with pytest.raises(ConfigError, match="parent-child edges"):
        build_objective(
            "bce", consistency_weight=1.0, edge_index=taxonomy_edge_index(taxonomy, taxonomy.leaves)
        )
    with pytest.raises(LossInputError, match="do not fit logits"):
        BinaryCrossEntropy()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(LossInputError, match="clip"):
        AsymmetricLoss(clip=1.5)


# ---- thresholds ----


def test_f1_grid_matches_sklearn_and_thresholds_fall_back():
    rng = np.random.default_rng(0)
    y_true = (rng.random((120, 4)) < 0.3).astype(float)
    y_true[:, 3] = 0
    scores = np.clip(0.35 * y_true + 0.65 * rng.random((120, 4)), 0, 1)
    f1 = f1_per_threshold(y_true, scores, DEFAULT_GRID)
    for label in range(3):
        for j in (0, 30, 60, 98):
            expected = f1_score(y_true[:, label], scores[:, label] >= DEFAULT_GRID[j], zero_division=0)
            assert f1[label, j] == pytest.approx(expected)
    thresholds = tune_thresholds(y_true, scores, fallback=0.4)
    # No positive example: the micro-F1 threshold of all labels pooled, i.e. of the flattened matrix.
    pooled = tune_thresholds(y_true.reshape(-1, 1), scores.reshape(-1, 1), min_positives=0)[0]
    assert thresholds[3] == pooled != 0.4
    assert tune_thresholds(np.zeros((5, 2)), np.full((5, 2), 0.3), fallback=0.4).tolist() == [0.4, 0.4]
    for label in range(3):
        best = f1_score(y_true[:, label], scores[:, label] >= thresholds[label])
        assert best == pytest.approx(f1[label].max())


def test_threshold_separating_the_classes_is_found():
    y_true = np.array([[1], [1], [0], [0]])
    scores = np.array([[0.9], [0.7], [0.4], [0.2]])
    threshold = tune_thresholds(y_true, scores)[0]
    assert 0.4 < threshold <= 0.7
    with pytest.raises(HierconError, match="shape"):
        tune_thresholds(y_true, scores[:3])
    with pytest.raises(HierconError, match="multi-hot"):
        tune_thresholds(y_true * 2, scores)
    with pytest.raises(HierconError, match="sigmoid"):
        tune_thresholds(y_true, scores * 10 - 5)


# ---- the trainer ----


def test_bce_falls_and_thresholds_are_stored(bert_dir, taxonomy, toy_dataset, tokenizer, tmp_path):
    classifier = tiny_classifier(bert_dir, taxonomy)
    args = _args(
        tmp_path,
        per_device_train_batch_size=12,
        max_steps=15,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
    )
    trainer = ClassifierTrainer(
        classifier, args, train_dataset=toy_dataset, eval_dataset=toy_dataset, processing_class=tokenizer
    )
    expected = taxonomy.encode([names for _, names in EMOTION_TEXTS])
    torch.testing.assert_close(torch.tensor(trainer.train_dataset["labels"]), expected)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.6 * before, (before, after)  # well below the label-prior-only loss (~0.6)
    thresholds = trainer.tune_thresholds_on()
    assert thresholds.shape == (taxonomy.num_labels,)
    assert read_hiercon_config(classifier.config)["thresholds"] == pytest.approx(thresholds.tolist())
    assert any("loss_bce" in entry for entry in trainer.state.log_history)


def test_linear_probe_trains_the_head_only(bert_dir, taxonomy, toy_dataset, tmp_path):
    classifier = tiny_classifier(bert_dir, taxonomy)
    encoder_before = copy.deepcopy(classifier.bert.state_dict())
    head_before = classifier.classifier.weight.detach().clone()
    trainer = ClassifierTrainer(
        classifier, _args(tmp_path, max_steps=2), train_dataset=toy_dataset, freeze_encoder=True
    )
    trainer.train()
    for name, value in classifier.bert.state_dict().items():
        torch.testing.assert_close(value, encoder_before[name])
    assert not torch.equal(classifier.classifier.weight, head_before)
    scores, labels = trainer.predict_scores(toy_dataset.remove_columns("labels"))
    assert labels is None and scores.shape == (len(EMOTION_TEXTS), 6) and ((scores > 0) & (scores < 1)).all()


def test_asl_with_consistency_penalty_trains_and_logs_parts(bert_dir, taxonomy, toy_dataset, tmp_path):
    classifier = tiny_classifier(bert_dir, taxonomy)
    trainer = ClassifierTrainer(
        classifier,
        _args(tmp_path, max_steps=2),
        train_dataset=toy_dataset,
        loss="asl",
        loss_options={"gamma_neg": 2, "gamma_pos": 0, "clip": 0.05},
        consistency_weight=0.5,
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss_asl" in entry]
    assert logged and all("loss_consistency" in entry for entry in logged)


class _GradientCapture(TrainerCallback):
    def __init__(self):
        self.gradients = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.gradients = {
            n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
        }


def test_gradient_accumulation_matches_one_big_batch(bert_dir, taxonomy, toy_dataset, tmp_path):
    four = toy_dataset.select(range(4))
    classifier = tiny_classifier(bert_dir, taxonomy)
    captured = {}
    for batch_size, steps in ((4, 1), (2, 2)):
        capture = _GradientCapture()
        args = _args(
            tmp_path,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=steps,
            max_steps=1,
            max_grad_norm=0.0,
        )
        trainer = ClassifierTrainer(copy.deepcopy(classifier), args, train_dataset=four, callbacks=[capture])
        trainer.train()
        captured[(batch_size, steps)] = capture.gradients

    classifier.train()
    batch = {key: torch.tensor(four[key]) for key in ("input_ids", "attention_mask", "token_type_ids")}
    logits = classifier(**batch).logits
    F.binary_cross_entropy_with_logits(logits, taxonomy.encode(four["labels"])).backward()
    expected = {n: p.grad for n, p in classifier.named_parameters() if p.grad is not None}
    for gradients in captured.values():
        assert gradients.keys() == expected.keys()
        for name, gradient in expected.items():
            torch.testing.assert_close(gradients[name], gradient, rtol=1e-4, atol=1e-6)


def test_bad_labels_are_refused_before_training(bert_dir, taxonomy, tokenizer, tmp_path):
    classifier = tiny_classifier(bert_dir, taxonomy)
    args = _args(tmp_path)
    tokens = dict(tokenizer(["happy", "sad"]))
    wrong_width = Dataset.from_dict({**tokens, "labels": [[1.0, 0.0], [0.0, 1.0]]})
    with pytest.raises(LabelFormatError, match="multi-hot over the 6 taxonomy nodes or its 4 leaves"):
        ClassifierTrainer(classifier, args, train_dataset=wrong_width)
    unknown = Dataset.from_dict({**tokens, "labels": [["joy"], ["gloom"]]})
    with pytest.raises(UnknownLabelError, match="gloom"):
        ClassifierTrainer(classifier, args, eval_dataset=unknown)
    with pytest.raises(ConfigError, match="needs a 'labels' column"):
        ClassifierTrainer(classifier, args, train_dataset=Dataset.from_dict(tokens))
    with pytest.raises(ConfigError, match="exclusive"):
        ClassifierTrainer(classifier, args, freeze_encoder=True, peft_config=object())
    leaves_classifier = tiny_classifier(bert_dir, taxonomy, label_space="leaves")
    with pytest.raises(UnknownLabelError, match="not one of the leaves"):
        ClassifierTrainer(
            leaves_classifier, args, train_dataset=Dataset.from_dict({**tokens, "labels": [["positive"], []]})
        )
    with pytest.raises(ConfigError, match="parent-child edges"):
        ClassifierTrainer(leaves_classifier, args, consistency_weight=1.0)


def test_goemotions_label_names_encode_with_their_ancestors(shipped_data, bert_dir, tokenizer, tmp_path):
    folder = shipped_data / "goemotions"
    taxonomy = LabelTaxonomy.from_file(folder / "taxonomy_edges.tsv")
    with gzip.open(folder / "dev_hier.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(next(handle)) for _ in range(24)]
    names = [[f"emotion:{emotion}" for emotion in row["emotions"]] for row in rows]
    data = Dataset.from_dict({**tokenizer([row["text"] for row in rows], truncation=True), "labels": names})
    trainer = ClassifierTrainer(tiny_classifier(bert_dir, taxonomy), _args(tmp_path), train_dataset=data)
    encoded = torch.tensor(trainer.train_dataset["labels"])
    assert encoded.shape == (24, taxonomy.num_labels)
    for row, multi_hot in zip(rows, encoded):
        expected = (
            {f"emotion:{name}" for name in row["emotions"]}
            | {f"ekman:{name}" for name in row["ekman"]}
            | {f"sentiment:{name}" for name in row["sentiment"]}
        )
        assert set(taxonomy.decode(multi_hot)) == expected


def test_predictions_follow_dataset_order_with_length_grouped_training(
    bert_dir, taxonomy, tokenizer, tmp_path
):
    texts = ["happy", "sad cry grief sorry miss alone hurt", "mad", "love thanks awesome nice fun win great"]
    data = Dataset.from_dict({"text": texts * 4, "labels": [["joy"]] * 16})
    data = data.map(lambda batch: tokenizer(batch["text"]), batched=True)
    classifier = tiny_classifier(bert_dir, taxonomy).eval()
    args = _args(tmp_path, per_device_eval_batch_size=2, train_sampling_strategy="group_by_length")
    trainer = ClassifierTrainer(classifier, args, processing_class=tokenizer)
    scores, _ = trainer.predict_scores(data)
    with torch.no_grad():
        one_by_one = [torch.sigmoid(classifier(**tokenizer(text, return_tensors="pt")).logits)[0] for text in data["text"]]
    np.testing.assert_allclose(scores, torch.stack(one_by_one).numpy(), atol=1e-5)
