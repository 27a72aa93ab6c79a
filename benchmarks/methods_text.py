"""The GoEmotions methods: a plain BCE fine-tune, SetFit, and hiercon's two-stage recipe per loss.

Each ``train_*`` function takes the parsed arguments, the encoder folder, the label space, the
train/dev/test rows and the pass budget, and returns the dev and test scores, timings, a dev curve
(training seconds -> dev macro-F1) and details worth recording.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import PassBudget
from goemotions_eval import LabelSpace, macro_f1_at_tuned_thresholds
from text_training import (
    finetune_multilabel,
    length_grouped_batches,
    optimizer_and_schedule,
    predict_sigmoid,
    tokenize,
)
from transformers import AutoModelForSequenceClassification, AutoTokenizer

Rows = list[dict[str, Any]]


class DevCurve:
    """Dev macro-F1 after each epoch against training time, with evaluation time excluded."""

    def __init__(self, score_dev: Callable[[], np.ndarray], dev_true: np.ndarray) -> None:
        self.score_dev = score_dev
        self.dev_true = dev_true
        self.points: list[dict[str, float]] = []
        self.eval_seconds = 0.0
        self.start = time.perf_counter()

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds

    def __call__(self, epoch: int) -> None:
        seconds = self.train_seconds()
        begin = time.perf_counter()
        macro = macro_f1_at_tuned_thresholds(self.dev_true, self.score_dev())
        self.eval_seconds += time.perf_counter() - begin
        self.points.append({"epoch": epoch, "train_seconds": round(seconds, 1), "dev_macro_f1": macro})
        print(f"epoch {epoch}: {seconds:.0f} s of training, dev macro-F1 {macro:.4f}", flush=True)


def _texts(rows: Rows) -> list[str]:
    return [row["text"] for row in rows]


def _score_splits(model, tokenizer, dev: Rows, test: Rows, max_length: int) -> dict[str, np.ndarray]:
    return {
        "dev_scores": predict_sigmoid(model, tokenizer, _texts(dev), max_length),
        "test_scores": predict_sigmoid(model, tokenizer, _texts(test), max_length),
    }


# --------------------------------------------------------------------------- (a) plain BCE


def train_bce(
    args: argparse.Namespace, encoder: str, space: LabelSpace, train: Rows, dev: Rows, test: Rows, budget: PassBudget
) -> dict[str, Any]:
    """AutoModelForSequenceClassification (multi-label BCE) fine-tuned for ``budget.total`` epochs."""
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder,
        num_labels=space.num_labels,
        problem_type="multi_label_classification",
        id2label=dict(enumerate(space.leaf_labels)),
        label2id={name: i for i, name in enumerate(space.leaf_labels)},
    )
    dev_true = space.leaf_targets(dev)
    curve = DevCurve(lambda: predict_sigmoid(model, tokenizer, _texts(dev), args.max_length), dev_true)
    losses = finetune_multilabel(
        model, tokenizer, _texts(train), space.leaf_targets(train),
        epochs=budget.total, learning_rate=args.lr, batch_size=args.batch_size,
        max_length=args.max_length, seed=args.seed, on_epoch_end=curve,
    )
    train_seconds = curve.train_seconds()
    begin = time.perf_counter()
    scores = _score_splits(model, tokenizer, dev, test, args.max_length)
    return {
        **scores,
        "timings": {"train": round(train_seconds, 1), "score": round(time.perf_counter() - begin, 1)},
        "dev_curve": curve.points,
        "details": {"epoch_losses": losses},
    }


# --------------------------------------------------------------------------- (b) SetFit


def train_setfit(
    args: argparse.Namespace, encoder: str, space: LabelSpace, train: Rows, dev: Rows, test: Rows, budget: PassBudget
) -> dict[str, Any]:
    """SetFit (one-vs-rest logistic head) with as many encoder passes as hiercon's stage 1.

    A pair costs two encoder passes, so stage 1 is capped at ``stage1 passes * n / 2`` pairs
    (``max_steps`` of the pair batches, drawn from one iteration of SetFit's pair sampling); the
    head is a logistic regression on frozen embeddings (one more pass).
    """
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    stage1_passes = budget.stage1_epochs * budget.views
    pairs = stage1_passes * len(train) // 2
    max_steps = math.ceil(pairs / args.batch_size)
    model = SetFitModel.from_pretrained(encoder, multi_target_strategy="one-vs-rest")
    train_set = Dataset.from_dict(
        {"text": _texts(train), "label": space.leaf_targets(train).astype(int).tolist()}
    )
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            batch_size=args.batch_size,
            num_epochs=1,
            num_iterations=1,
            max_steps=max_steps,
            body_learning_rate=args.lr,
            max_length=args.max_length,
            seed=args.seed,
            report_to="none",
            save_strategy="no",
            show_progress_bar=False,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train_set, metric=lambda p, r: {})
        begin = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - begin

    def probabilities(rows: Rows) -> np.ndarray:
        scores = model.predict_proba(_texts(rows), batch_size=128, as_numpy=True)
        return np.asarray(scores, dtype=np.float32)

    begin = time.perf_counter()
    dev_scores, test_scores = probabilities(dev), probabilities(test)
    dev_true = space.leaf_targets(dev)
    return {
        "dev_scores": dev_scores,
        "test_scores": test_scores,
        "timings": {"train": round(train_seconds, 1), "score": round(time.perf_counter() - begin, 1)},
        "dev_curve": [{"epoch": 1, "train_seconds": round(train_seconds, 1),
                       "dev_macro_f1": macro_f1_at_tuned_thresholds(dev_true, dev_scores)}],
        "encoder_passes_per_example": stage1_passes + 1,
        "details": {"pairs": max_steps * args.batch_size, "max_steps": max_steps},
    }


# --------------------------------------------------------------------------- (c-g) hiercon two-stage


def build_loss(method: str, args: argparse.Namespace, space: LabelSpace, embedding_dim: int):
    """The stage-1 loss of ``method`` and a function turning rows into the labels it expects."""
    from hiercon import losses

    tau = args.temperature
    multi_hot = lambda rows: torch.as_tensor(space.leaf_targets(rows))  # noqa: E731
    if method == "supcon":
        return losses.SupConLoss(temperature=tau, positives="any"), multi_hot
    if method == "jaccard":
        return losses.JaccardSupConLoss(temperature=tau), multi_hot
    if method == "mulsupcon":
        return losses.MulSupConLoss(temperature=tau), multi_hot
    if method == "reg":
        return losses.RegLoss(num_labels=space.num_labels, embedding_dim=embedding_dim, temperature=tau), multi_hot
    taxonomy = space.taxonomy
    node_multi_hot = lambda rows: taxonomy.encode(space.leaf_label_sets(rows))  # noqa: E731
    if method == "himulcone":
        return losses.HiMulConELoss(taxonomy=taxonomy, temperature=tau), node_multi_hot
    if method == "clinfonce":
        ekman_level = taxonomy.num_levels - 2
        ekman_clusters = lambda rows: taxonomy.encode_level(space.leaf_label_sets(rows), ekman_level)  # noqa: E731
        return losses.ClInfoNCELoss(temperature=tau), ekman_clusters
    if method == "ranked":
        if list(taxonomy.leaves) != space.leaf_labels:
            raise ValueError("the taxonomy's leaf order differs from the benchmark's emotion order")
        return losses.RankedContrastiveLoss(taxonomy=taxonomy, tau_min=tau), multi_hot
    raise ValueError(f"no stage-1 loss wired for method {method!r}")


def train_stage1(
    model, tokenizer, loss, labels_of: Callable[[Rows], torch.Tensor], train: Rows,
    *, epochs: int, views: int, learning_rate: float, batch_size: int, max_length: int, seed: int,
) -> list[float]:
    """Contrastive stage 1 with dropout views (SimCSE): every batch is encoded ``views`` times."""
    from hiercon.modeling.views import DropoutViews, split_views

    make_views = DropoutViews(views)
    generator = torch.Generator().manual_seed(seed)
    parameters = list(model.parameters()) + list(loss.parameters())
    steps = epochs * math.ceil(len(train) / batch_size)
    optimizer, schedule = optimizer_and_schedule(parameters, learning_rate, steps)
    epoch_losses = []
    for _ in range(epochs):
        model.train()
        running = []
        for batch in length_grouped_batches(_texts(train), batch_size, generator):
            rows = [train[i] for i in batch]
            inputs = make_views(dict(tokenize(tokenizer, _texts(rows), max_length)))
            embeddings = split_views(model(**inputs).embeddings, views)
            value = loss.total(loss(embeddings, labels_of(rows)))
            value.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            running.append(value.item())
        epoch_losses.append(float(np.mean(running)))
    return epoch_losses


@torch.no_grad()
def head_inputs(classifier, tokenizer, texts: list[str], max_length: int, batch_size: int = 128) -> np.ndarray:
    """What a BERT-family classifier's head reads: the base model's pooler output (eval mode)."""
    classifier.eval()
    features = []
    for batch in range(0, len(texts), batch_size):
        inputs = tokenize(tokenizer, texts[batch : batch + batch_size], max_length)
        features.append(classifier.base_model(**inputs).pooler_output.float().numpy())
    return np.concatenate(features)


def fit_linear_probe(classifier, tokenizer, texts: list[str], targets: np.ndarray, max_length: int) -> None:
    """Stage 2 as a linear probe: one logistic regression per label on the frozen head inputs
    (SetFit's one-vs-rest head), written into the classifier's own linear head.

    A label without a positive (or negative) training example gets a constant score.
    """
    from sklearn.linear_model import LogisticRegression

    features = head_inputs(classifier, tokenizer, texts, max_length)
    weight = np.zeros((targets.shape[1], features.shape[1]), dtype=np.float32)
    bias = np.full(targets.shape[1], -10.0, dtype=np.float32)
    for label in range(targets.shape[1]):
        column = targets[:, label]
        if 0 < column.sum() < len(column):
            regression = LogisticRegression(max_iter=1000).fit(features, column)
            weight[label], bias[label] = regression.coef_[0], regression.intercept_[0]
        elif column.all():
            bias[label] = 10.0
    head = classifier.classifier
    head.weight.data.copy_(torch.from_numpy(weight))
    head.bias.data.copy_(torch.from_numpy(bias))


def train_two_stage(
    args: argparse.Namespace, encoder: str, space: LabelSpace, train: Rows, dev: Rows, test: Rows, budget: PassBudget
) -> dict[str, Any]:
    """Stage 1: ContrastiveModel + the method's loss; stage 2: build_classifier, then a BCE fine-tune
    (``--stage2 finetune``) or a linear probe of the frozen encoder (``--stage2 probe``)."""
    from hiercon import ContrastiveModel, build_classifier

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = ContrastiveModel.from_encoder(encoder)
    begin = time.perf_counter()
    if args.method == "probe":
        stage1_losses, stage1 = [], None
        budget = PassBudget(stage1_epochs=0, views=budget.views, stage2_epochs=budget.stage2_epochs)
    else:
        loss, labels_of = build_loss(args.method, args, space, model.embedding_dim)
        stage1_losses = train_stage1(
            model, tokenizer, loss, labels_of, train,
            epochs=budget.stage1_epochs, views=budget.views, learning_rate=args.lr,
            batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
        )
        stage1 = {"loss": type(loss).__name__, "loss_config": loss.config(), "citation": loss.citation}
    stage1_seconds = time.perf_counter() - begin
    classifier = build_classifier(model, labels=space.leaf_labels, stage1=stage1)
    dev_true = space.leaf_targets(dev)
    curve = DevCurve(lambda: predict_sigmoid(classifier, tokenizer, _texts(dev), args.max_length), dev_true)
    curve.start -= stage1_seconds
    if args.stage2 == "probe":
        fit_linear_probe(classifier, tokenizer, _texts(train), space.leaf_targets(train), args.max_length)
        stage2_losses = []
        curve(1)
        passes = budget.stage1_epochs * budget.views + 1
    else:
        stage2_losses = finetune_multilabel(
            classifier, tokenizer, _texts(train), space.leaf_targets(train),
            epochs=budget.stage2_epochs, learning_rate=args.lr, batch_size=args.batch_size,
            max_length=args.max_length, seed=args.seed, on_epoch_end=curve,
        )
        passes = budget.total
    train_seconds = curve.train_seconds()
    begin = time.perf_counter()
    scores = _score_splits(classifier, tokenizer, dev, test, args.max_length)
    if getattr(args, "save_model", None):
        Path(args.save_model).mkdir(parents=True, exist_ok=True)
        classifier.save_pretrained(args.save_model)
        tokenizer.save_pretrained(args.save_model)
    return {
        **scores,
        "timings": {"stage1": round(stage1_seconds, 1), "train": round(train_seconds, 1),
                    "score": round(time.perf_counter() - begin, 1)},
        "dev_curve": curve.points,
        "encoder_passes_per_example": passes,
        "details": {"stage1_losses": stage1_losses, "stage2_losses": stage2_losses, "loss": stage1,
                    "stage2": args.stage2},
    }
