"""The head modes of stage 2: an L-BFGS fit of the classifier's own linear layer on frozen features."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from tiny_classifiers import EMOTION_TEXTS, emotion_dataset, tiny_classifier
from tiny_models import quick_args, save_tiny_bert
from transformers import AutoTokenizer, pipeline

from hiercon import ClassifierTrainer
from hiercon.errors import ConfigError
from hiercon.modeling.classifier import read_hiercon_config
from hiercon.training.head_fit import classification_layer, fit_linear_head, head_features


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    # Default dropout (0.1): the fitted features must be the eval-mode ones the head reads at inference.
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def dataset(bert_dir):
    return emotion_dataset(AutoTokenizer.from_pretrained(bert_dir))


def _objective(x, y, weight, bias, l2):
    bce = F.binary_cross_entropy_with_logits(x @ weight.T + bias, y, reduction="sum")
    return (bce + 0.5 * l2 * weight.square().sum()) / x.shape[0]


def test_lbfgs_reaches_the_convex_optimum():
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(size=(200, 16)))
    y = (rng.random((200, 4)) < 1 / (1 + np.exp(-(x @ rng.normal(size=(16, 4)) - 1)))).astype(float)
    fit = fit_linear_head(x, y, l2=1.0)
    assert fit.converged and fit.gradient <= 1e-6

    # Many epochs of gradient descent on the same objective end no lower.
    xt, yt = torch.tensor(x), torch.tensor(y)
    weight = torch.zeros(4, 16, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(2000):
        optimizer.zero_grad()
        loss = _objective(xt, yt, weight, bias, 1.0)
        loss.backward()
        optimizer.step()
    assert fit.objective <= float(_objective(xt, yt, weight.detach(), bias.detach(), 1.0)) + 1e-9
    assert fit.objective == pytest.approx(float(_objective(xt, yt, fit.weight, fit.bias, 1.0)))

    # The same solution as scikit-learn's one-vs-rest logistic regression (C = 1 / l2).
    for label in range(4):
        reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y[:, label])
        np.testing.assert_allclose(fit.weight[label].numpy(), reference.coef_[0], atol=1e-4)
        assert fit.bias[label].item() == pytest.approx(reference.intercept_[0], abs=1e-4)


def test_balanced_fit_is_scikit_learns_balanced_logistic_regression():
    """``class_weight="balanced"``: each label's positives and negatives weigh the same in total, as
    scikit-learn weighs the two classes; a rare label gains recall at the same penalty."""
    rng = np.random.default_rng(1)
    x = np.tanh(rng.normal(size=(300, 8)))
    scores = x @ rng.normal(size=(8, 3)) - np.array([2.5, 1.0, 0.0])
    y = (rng.random((300, 3)) < 1 / (1 + np.exp(-scores))).astype(float)
    assert y[:, 0].mean() < 0.2, "label 0 is rare"
    fit = fit_linear_head(x, y, l2=2.0, class_weight="balanced")
    plain = fit_linear_head(x, y, l2=2.0)
    assert fit.converged and fit.record()["class_weight"] == "balanced"
    for label in range(3):
        reference = LogisticRegression(C=0.5, class_weight="balanced", tol=1e-10, max_iter=10_000)
        reference.fit(x, y[:, label])
        np.testing.assert_allclose(fit.weight[label].numpy(), reference.coef_[0], atol=1e-4)
        assert fit.bias[label].item() == pytest.approx(reference.intercept_[0], abs=1e-4)
    rare = y[:, 0] == 1

    def recall(head):
        return float(((x @ head.weight[0].numpy() + head.bias[0].item()) > 0)[rare].mean())

    assert recall(fit) > recall(plain)
    with pytest.raises(ConfigError, match="class_weight"):
        fit_linear_head(x, y, class_weight="inverse")


def test_fit_inputs_are_checked():
    with pytest.raises(ConfigError, match="same n"):
        fit_linear_head(np.zeros((3, 2)), np.zeros((4, 1)))
    with pytest.raises(ConfigError, match="0/1"):
        fit_linear_head(np.zeros((3, 2)), np.full((3, 1), 0.5))
    with pytest.raises(ConfigError, match="NaN"):
        fit_linear_head(np.full((3, 2), np.nan), np.zeros((3, 1)))


def test_head_mode_fits_the_models_own_layer_and_pipeline_serves_it(bert_dir, dataset, tmp_path):
    classifier = tiny_classifier(bert_dir)
    encoder_before = copy.deepcopy(classifier.bert.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    trainer = ClassifierTrainer(
        classifier,
        quick_args(tmp_path, seed=0),
        train_dataset=dataset,
        processing_class=tokenizer,
        mode="head",
    )
    # The features are the pooler output in eval mode (no dropout), what the classifier reads.
    features = head_features(trainer, dataset.remove_columns("labels"))
    classifier.eval()
    with torch.no_grad():
        inputs = {k: torch.tensor(dataset[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        pooled = classifier.bert(**inputs).pooler_output.numpy()
    np.testing.assert_allclose(features, pooled, atol=1e-6)

    output = trainer.train()
    assert trainer.state.global_step == 0
    fit = trainer.head_fit
    assert fit.converged and output.training_loss == pytest.approx(fit.bce)
    for name, value in classifier.bert.state_dict().items():
        torch.testing.assert_close(value, encoder_before[name])
    torch.testing.assert_close(classifier.classifier.weight, fit.weight.float())
    # The model's own eval-mode BCE on the training set is the fit's: nothing differs at inference.
    scores, truth = trainer.predict_scores(dataset)
    bce = F.binary_cross_entropy(
        torch.tensor(scores, dtype=torch.float64), torch.tensor(truth, dtype=torch.float64)
    )
    assert bce.item() == pytest.approx(fit.bce, abs=1e-5)
    record = read_hiercon_config(classifier.config)["stage2"]
    assert record["mode"] == "head" and record["freeze_encoder"] is True
    assert record["head_fit"]["converged"] is True and record["head_l2"] == 3.0

    folder = tmp_path / "saved"
    trainer.save_model(str(folder))
    served = pipeline("text-classification", model=str(folder))
    for row, (text, _) in enumerate(EMOTION_TEXTS[:4]):
        by_label = {entry["label"]: entry["score"] for entry in served(text, top_k=None)}
        expected = [scores[row][i] for i in range(len(by_label))]
        names = [classifier.config.id2label[i] for i in range(len(by_label))]
        np.testing.assert_allclose([by_label[name] for name in names], expected, atol=1e-5)


def test_head_then_full_fits_the_head_then_trains_everything(bert_dir, dataset, tmp_path):
    classifier = tiny_classifier(bert_dir)
    encoder_before = copy.deepcopy(classifier.bert.state_dict())
    trainer = ClassifierTrainer(
        classifier,
        quick_args(tmp_path, max_steps=2, per_device_train_batch_size=4, learning_rate=1e-3, seed=0),
        train_dataset=dataset,
        mode="head_then_full",
        head_l2=0.5,
    )
    fitted = {}
    original = trainer.fit_head

    def spy(*args, **kwargs):
        fit = original(*args, **kwargs)
        fitted["weight"] = classifier.classifier.weight.detach().clone()
        fitted["fit"] = fit
        return fit

    trainer.fit_head = spy
    trainer.train()
    assert fitted["fit"].converged and fitted["fit"].l2 == 0.5
    torch.testing.assert_close(fitted["weight"], fitted["fit"].weight.float())
    assert trainer.state.global_step == 2
    assert any(not torch.equal(v, classifier.bert.state_dict()[k]) for k, v in encoder_before.items())
    record = read_hiercon_config(classifier.config)["stage2"]
    assert record["mode"] == "head_then_full" and record["freeze_encoder"] is False and "head_fit" in record


def test_modes_are_checked(bert_dir, dataset, tmp_path):
    args = quick_args(tmp_path)
    with pytest.raises(ConfigError, match="JointClassifierTrainer"):
        ClassifierTrainer(tiny_classifier(bert_dir), args, train_dataset=dataset, mode="joint")
    with pytest.raises(ConfigError, match="contradicts"):
        ClassifierTrainer(
            tiny_classifier(bert_dir), args, train_dataset=dataset, mode="full", freeze_encoder=True
        )
    with pytest.raises(ConfigError, match="exclusive"):
        ClassifierTrainer(tiny_classifier(bert_dir), args, mode="head", peft_config=object())
    with pytest.raises(ConfigError, match="head_l2"):
        ClassifierTrainer(tiny_classifier(bert_dir), args, mode="head", head_l2=-1.0)


def test_classification_layer_is_found_across_architectures():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    model = RobertaForSequenceClassification(config)
    assert classification_layer(model) is model.classifier.out_proj
