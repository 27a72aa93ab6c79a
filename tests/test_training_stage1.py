"""Stage 1 end to end through ContrastiveTrainer on tiny models (CPU, seconds)."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from stage1_toy import tiny_text_setup, toy_dataset, toy_taxonomy
from tiny_models import quick_args
from transformers import TrainingArguments

from hiercon import ContrastiveModel, ContrastiveTrainer
from hiercon.errors import ConfigError, LabelFormatError, UnknownLabelError
from hiercon.losses import SupConLoss
from hiercon.losses.base import ContrastiveLoss
from hiercon.metrics import make_stage1_compute_metrics


def args(tmp_path, **overrides) -> TrainingArguments:
    settings = dict(
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=3e-3,
        num_train_epochs=1,
        logging_steps=1,
        seed=0,
    )
    return quick_args(tmp_path / "run", **{**settings, **overrides})


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_bert")
    return tiny_text_setup(folder)


@pytest.fixture(scope="module")
def taxonomy():
    return toy_taxonomy()


def train_losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_loss_falls_on_toy_task_and_metrics_rise(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    train = toy_dataset(tokenizer, taxonomy, count=64, seed=0)
    held_out = toy_dataset(tokenizer, taxonomy, count=32, seed=1)
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=16)
    trainer = ContrastiveTrainer(
        model=model,
        args=args(tmp_path, per_device_train_batch_size=16, learning_rate=1e-3, num_train_epochs=3),
        train_dataset=train,
        eval_dataset=held_out,
        loss=SupConLoss(temperature=0.1),
        processing_class=tokenizer,
        compute_metrics=make_stage1_compute_metrics(taxonomy=taxonomy, k=5),
        batch_sampler="random",
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    losses = train_losses(trainer)
    assert len(losses) == 12
    assert sum(losses[-4:]) < 0.8 * sum(losses[:4])
    assert after["eval_loss"] < 0.7 * before["eval_loss"]
    assert after["eval_knn_macro_f1"] > before["eval_knn_macro_f1"]
    assert after["eval_knn_macro_f1"] > 0.9
    assert after["eval_level_0_accuracy"] > 0.9 and after["eval_level_1_accuracy"] > 0.9
    assert 0.0 <= after["eval_map_at_r"] <= 1.0
    assert model.loss_info["loss"] == "SupConLoss"


def test_save_reload_and_resume_from_checkpoint(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    train = toy_dataset(tokenizer, taxonomy, count=32)
    batch = {k: torch.tensor(v) for k, v in train.select(range(4)).remove_columns("labels").to_dict().items()}

    def make_trainer(output_dir, max_steps):
        torch.manual_seed(0)
        model = ContrastiveModel.from_encoder(path, pooling="cls", projection_dim=8)
        return ContrastiveTrainer(
            model=model,
            args=args(
                tmp_path, output_dir=str(output_dir), max_steps=max_steps, save_strategy="steps", save_steps=2
            ),
            train_dataset=train,
            loss=SupConLoss(),
            processing_class=tokenizer,
            views=1,
        )

    full = make_trainer(tmp_path / "full", 4)
    full.train()
    full.save_model(str(tmp_path / "final"))
    assert (tmp_path / "full" / "checkpoint-2" / "projection_head.safetensors").is_file()
    assert (tmp_path / "full" / "checkpoint-2" / "optimizer.pt").is_file()

    reloaded = ContrastiveModel.from_pretrained(tmp_path / "final").eval()
    full.model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).embeddings, full.model(**batch).embeddings, atol=1e-6)

    resumed = make_trainer(tmp_path / "resumed", 4)
    import shutil

    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    resumed.model.eval()
    with torch.no_grad():
        assert torch.allclose(resumed.model(**batch).embeddings, full.model(**batch).embeddings, atol=1e-5)
    full_losses, resumed_losses = train_losses(full), train_losses(resumed)
    assert resumed_losses[-2:] == pytest.approx(full_losses[-2:], abs=1e-4)


class _PartsLoss(ContrastiveLoss):
    """SupCon on multi-hot labels, reported as two named halves, and an extra column check."""

    label_kind = "multi_hot"

    def __init__(self) -> None:
        super().__init__()
        self.inner = SupConLoss()
        self.seen_extra: list[torch.Tensor] = []

    def forward(self, embeddings, labels, weight=None):
        self.seen_extra.append(weight)
        value = self.inner(embeddings, labels)
        return {"first": 0.25 * value, "second": 0.75 * value}


def test_named_parts_are_logged_and_declared_columns_reach_the_loss(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    train = toy_dataset(tokenizer, taxonomy, count=16, weight=[float(i) for i in range(16)])
    loss = _PartsLoss()
    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(path, projection_dim=8),
        args=args(tmp_path, max_steps=2, label_names=["labels", "weight"]),
        train_dataset=train,
        loss=loss,
        processing_class=tokenizer,
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all({"loss_first", "loss_second"} <= set(entry) for entry in logged)
    for entry in logged:
        assert entry["loss_first"] + entry["loss_second"] == pytest.approx(entry["loss"], rel=1e-3)
    assert all(isinstance(w, torch.Tensor) and w.shape == (8,) for w in loss.seen_extra)


def test_declared_label_column_missing_is_an_error(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(path, projection_dim=8),
        args=args(tmp_path, max_steps=1, label_names=["labels", "ancestor_mask"]),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=16),
        loss=_PartsLoss(),
        processing_class=tokenizer,
    )
    with pytest.raises(ConfigError, match="ancestor_mask"):
        trainer.train()


class _MeanSquaredLoss(ContrastiveLoss):
    """A loss that is a mean over independent items: mean squared distance of embeddings to a target."""

    label_kind = "multi_hot"

    def forward(self, embeddings, labels):
        target = torch.zeros_like(embeddings)
        target[..., 0] = 1.0
        return ((embeddings - target) ** 2).sum(-1).mean()


def _gradients_after_one_update(tmp_path, path, tokenizer, dataset, batch, accumulation):
    torch.manual_seed(0)
    model = ContrastiveModel.from_encoder(path, projection_dim=8)
    trainer = ContrastiveTrainer(
        model=model,
        args=args(
            tmp_path,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            learning_rate=0.0,
            max_grad_norm=0.0,
        ),
        train_dataset=dataset,
        loss=_MeanSquaredLoss(),
        processing_class=tokenizer,
        views=1,
        batch_sampler="random",
    )
    head = model.head.layers[2].weight
    captured = []

    class Capture(torch.optim.SGD):
        def step(self, closure=None):
            captured.append(head.grad.detach().clone())
            return super().step(closure)

    trainer.optimizer = Capture(model.parameters(), lr=0.0)
    trainer.train()
    return captured[0]


def test_gradient_accumulation_matches_large_batch(tmp_path, text_setup, taxonomy):
    """2 accumulation steps of 2 examples give the gradient of 1 step of 4 for an item-wise mean loss,
    i.e. the mean (not the sum) of the micro-batch gradients."""
    path, tokenizer = tiny_text_setup(
        tmp_path / "no_dropout", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    dataset = toy_dataset(tokenizer, taxonomy, count=4)
    big = _gradients_after_one_update(tmp_path / "a", path, tokenizer, dataset, batch=4, accumulation=1)
    accumulated = _gradients_after_one_update(
        tmp_path / "b", path, tokenizer, dataset, batch=2, accumulation=2
    )
    assert torch.allclose(accumulated, big, atol=1e-6)
    assert not torch.allclose(accumulated, 2 * big, atol=1e-6)


def test_bad_inputs_are_refused_before_training(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    good = toy_dataset(tokenizer, taxonomy, count=16)

    def trainer_for(dataset, loss=None, **kwargs):
        return ContrastiveTrainer(
            model=ContrastiveModel.from_encoder(path, projection_dim=8),
            args=args(tmp_path, max_steps=1),
            train_dataset=dataset,
            loss=loss or SupConLoss(),
            processing_class=tokenizer,
            **{"taxonomy": taxonomy, **kwargs},
        )

    no_labels = good.remove_columns("labels")
    with pytest.raises(ConfigError, match="no label column 'labels'"):
        trainer_for(no_labels).train()

    scalar = good.remove_columns("labels").add_column("labels", [[[1.0]]] * 16)
    with pytest.raises(ConfigError, match="shape"):
        trainer_for(scalar).train()

    too_wide = good.remove_columns("labels").add_column("labels", [[0.0] * 9] * 16)
    with pytest.raises(LabelFormatError, match="multi-hot over the 7 taxonomy nodes or its 4 leaves"):
        trainer_for(too_wide).train()

    ids_outside = good.remove_columns("labels").add_column("labels", list(range(16)))
    with pytest.raises(UnknownLabelError, match="label id 15"):
        trainer_for(ids_outside).train()

    names = good.remove_columns("labels").add_column("labels", ["joy"] * 16)
    trainer_for(names).check_train_dataset()  # names are read through the taxonomy's label space
    with pytest.raises(ConfigError, match="need a label space"):
        trainer_for(names, taxonomy=None).check_train_dataset()

    untokenized = Dataset.from_dict({"text": ["happy"] * 16, "labels": good["labels"]})
    with pytest.raises(ConfigError, match="input_ids"):
        trainer_for(untokenized).train()


def test_label_paths_are_derived_for_a_paths_loss(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    seen = []

    class PathsLoss(ContrastiveLoss):
        label_kind = "paths"

        def forward(self, embeddings, labels):
            seen.append(labels)
            return SupConLoss()(embeddings, labels[:, -1])

    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(path, projection_dim=8),
        args=args(tmp_path, max_steps=1),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=16),
        loss=PathsLoss(),
        processing_class=tokenizer,
        taxonomy=taxonomy,
        batch_sampler="random",
    )
    trainer.train()
    paths = seen[0]
    assert paths.shape == (8, 2) and paths.dtype == torch.long
    names = {tuple(taxonomy.label(int(i)) for i in row) for row in paths}
    assert names <= {
        ("positive", "joy"),
        ("negative", "sadness"),
        ("negative", "anger"),
        ("ambiguous", "curiosity"),
    }


def test_himulcone_trains_through_the_trainer(tmp_path, text_setup, taxonomy):
    from hiercon.losses import HiMulConELoss

    path, tokenizer = text_setup
    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=8),
        args=args(tmp_path, max_steps=3),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=24),
        loss=HiMulConELoss(taxonomy=taxonomy, return_parts=True),
        processing_class=tokenizer,
        batch_sampler="pk",
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3 and all(math.isfinite(entry["loss"]) for entry in logged)
    assert any(key.startswith("loss_level") for key in logged[0])


def test_cluster_callback_recomputes_cluster_labels_for_a_clusters_loss(tmp_path, text_setup, taxonomy):
    from hiercon.losses import ClInfoNCELoss
    from hiercon.training import ClusterCallback

    path, tokenizer = text_setup
    seen = []

    class Spy(ClInfoNCELoss):
        def forward(self, embeddings, labels=None):
            seen.append(labels.clone())
            return super().forward(embeddings, labels)

    callback = ClusterCallback(every_n_epochs=1, n_clusters=(4, 2), batch_size=8)
    reclusters = []
    original = callback.recluster

    def counting_recluster():
        reclusters.append(1)
        original()

    callback.recluster = counting_recluster
    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(path, projection_dim=8),
        args=args(tmp_path, num_train_epochs=2),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=16).remove_columns("labels"),
        loss=Spy(),
        processing_class=tokenizer,
        callbacks=[callback],
        batch_sampler="random",
    )
    trainer.train()
    assert len(reclusters) == 2  # at the start of training and of epoch 2
    hierarchy = trainer.cluster_hierarchy
    assert hierarchy.shape == (16, 2) and hierarchy[:, 0].max() < 4 and hierarchy[:, 1].max() < 2
    for fine in hierarchy[:, 0].unique():  # each fine cluster lies inside one coarse cluster
        assert hierarchy[hierarchy[:, 0] == fine, 1].unique().numel() == 1
    assert len(seen) == 4 and all(labels.shape == (8,) and labels.dtype == torch.long for labels in seen)
    plan = trainer.batch_sampler.epoch_plan(1)
    assert torch.equal(seen[-1], trainer.cluster_assignments[torch.tensor(plan[-1])])


def test_momentum_encoder_keys_reach_a_loss_that_takes_them(tmp_path, text_setup, taxonomy):
    path, tokenizer = text_setup
    seen = []

    class KeysLoss(ContrastiveLoss):
        label_kind = "multi_hot"

        def forward(self, embeddings, labels, key_embeddings=None):
            seen.append(key_embeddings)
            return SupConLoss()(embeddings, labels)

    model = ContrastiveModel.from_encoder(path, projection_dim=8)
    trainer = ContrastiveTrainer(
        model=model,
        args=args(tmp_path, max_steps=2, learning_rate=1e-2),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=16),
        loss=KeysLoss(),
        processing_class=tokenizer,
        momentum=0.5,
    )
    key_head = trainer.momentum_encoder.encoder.head.layers[0].weight
    start = key_head.detach().clone()
    trainer.train()
    assert seen[0].shape == (8, 2, 8) and not seen[0].requires_grad
    online = model.head.layers[0].weight.detach()
    assert not torch.equal(key_head, start) and not torch.allclose(key_head, online)


def test_hcsc_gets_prototypes_from_the_cluster_callback_and_momentum_keys(tmp_path, text_setup, taxonomy):
    from hiercon.losses import HCSCLoss
    from hiercon.training import ClusterCallback

    path, tokenizer = text_setup
    loss = HCSCLoss(queue_size=32, seed=0)
    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(path, projection_dim=8),
        args=args(tmp_path, max_steps=2),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=16),
        loss=loss,
        processing_class=tokenizer,
        callbacks=[ClusterCallback(n_clusters=(4, 2), batch_size=16)],
        momentum=0.99,
    )
    trainer.train()
    assert loss.num_levels == 2 and trainer.cluster_hierarchy.shape == (16, 2)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert math.isfinite(entry["loss"]) and {"loss_instance", "loss_prototype"} <= set(entry)
