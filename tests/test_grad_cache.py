"""GradCache (``mini_batch_size``): one cached step gives the gradients of the uncached step, for every
loss, with dropout and augmented views, gradient accumulation, LoRA and two processes.

Gradients are compared in float64 with a relative difference (norm of the difference over the norm
of the reference) of at most 1e-5 per tensor.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from distributed_utils import run_script, torchrun_command
from stage1_toy import tiny_text_setup, toy_dataset, toy_taxonomy
from tiny_models import quick_args, save_tiny_vit
from transformers import AutoImageProcessor, TrainerCallback

from hiercon import ContrastiveModel, ContrastiveTrainer
from hiercon.errors import ConfigError
from hiercon.losses import (
    HCSCLoss,
    HiMulConELoss,
    JaccardSupConLoss,
    PrototypeLoss,
    RegLoss,
    SupConLoss,
)
from hiercon.modeling.views import split_views
from hiercon.training.grad_cache import GradCache, mini_batch_slices, view_rows

TOLERANCE = 1e-5
DIM = 8
NUM_NODES = 7
SCRIPT = Path(__file__).resolve().parent / "scripts" / "grad_cache_ddp.py"
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@pytest.fixture(scope="module")
def taxonomy():
    return toy_taxonomy()


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    """A tiny BERT without dropout: the cached step must equal the full-batch step exactly."""
    return tiny_text_setup(tmp_path_factory.mktemp("bert"), **NO_DROPOUT)


@pytest.fixture(scope="module")
def dropout_setup(tmp_path_factory):
    """A tiny BERT with dropout 0.1 (dropout views)."""
    return tiny_text_setup(tmp_path_factory.mktemp("bert_dropout"))


def relative_difference(value: torch.Tensor, reference: torch.Tensor, floor: float = 1e-30) -> float:
    return float((value - reference).norm() / reference.norm().clamp_min(floor))


def assert_same_gradients(cached: dict[str, torch.Tensor], plain: dict[str, torch.Tensor]) -> None:
    """Every gradient within ``TOLERANCE`` of the plain one, relative to its norm; gradients that are
    zero up to rounding (an attention key bias, whose gradient vanishes exactly in theory) are measured
    against 1e-10 of the whole gradient's norm instead."""
    assert cached.keys() == plain.keys() and plain
    total = float(torch.stack([g.norm() for g in plain.values()]).norm())
    assert total > 0, "the step produced gradients"
    differences = {name: relative_difference(cached[name], plain[name], 1e-10 * total) for name in plain}
    worst = max(differences, key=differences.get)
    assert differences[worst] <= TOLERANCE, (worst, differences[worst])


def gradients(trainer: ContrastiveTrainer) -> dict[str, torch.Tensor]:
    """The gradients of the model's and the loss's parameters (loss ones prefixed ``loss.``)."""
    found = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    found.update(
        {f"loss.{name}": p.grad.clone() for name, p in trainer.loss.named_parameters() if p.grad is not None}
    )
    return found


def make_trainer(
    tmp_path, setup, loss, dataset, mini_batch_size=None, lora=None, float64=True, **options
) -> ContrastiveTrainer:
    """A float64 trainer (float32 with ``float64=False``) on a fresh copy of the model (seed 0) and of
    ``loss`` (its parameters in float64; buffers such as a key queue keep their dtype)."""
    path, tokenizer = setup
    torch.manual_seed(0)
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=DIM, peft_config=lora)
    model = model.double() if float64 else model
    settings = dict(per_device_train_batch_size=8, max_steps=1, learning_rate=1e-3, seed=0, max_grad_norm=0.0)
    settings.update(options.pop("training", {}))
    trainer = ContrastiveTrainer(
        model=model,
        args=quick_args(tmp_path / "run", **settings),
        train_dataset=dataset,
        loss=_float64_parameters(copy.deepcopy(loss)) if float64 else copy.deepcopy(loss),
        processing_class=tokenizer,
        mini_batch_size=mini_batch_size,
        **options,
    )
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def _float64_parameters(loss: torch.nn.Module) -> torch.nn.Module:
    for parameter in loss.parameters():
        parameter.data = parameter.data.double()
    return loss


def first_batch(trainer: ContrastiveTrainer, size: int = 8) -> dict:
    dataset = trainer.train_dataset
    return trainer.data_collator([dataset[i] for i in range(size)])


def step_gradients(trainer: ContrastiveTrainer, batch: dict, seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    loss = trainer.training_step(trainer.model, batch)
    assert torch.isfinite(loss) and not loss.requires_grad
    return gradients(trainer)


def hcsc_loss() -> HCSCLoss:
    """HCSC with two levels of prototypes (4 fine, 2 coarse) and a queue already holding keys."""
    generator = torch.Generator().manual_seed(5)
    loss = HCSCLoss(queue_size=32, seed=0)
    fine = torch.arange(4).repeat(2)
    loss.set_prototypes(
        [torch.randn(4, DIM, generator=generator), torch.randn(2, DIM, generator=generator)],
        assignments=torch.stack([fine, fine // 2], dim=1),
    )
    loss.queue.enqueue(torch.randn(16, DIM, generator=generator), gather=False)
    return loss


def cluster_column(count: int) -> list[list[int]]:
    return [[i % 4, (i % 4) // 2] for i in range(count)]


LOSSES = {
    "supcon": lambda taxonomy: SupConLoss(temperature=0.1),
    "jaccard_supcon": lambda taxonomy: JaccardSupConLoss(temperature=0.1),
    "reg": lambda taxonomy: RegLoss(NUM_NODES, DIM, 0.2),
    "himulcone": lambda taxonomy: HiMulConELoss(taxonomy=taxonomy),
    "prototype": lambda taxonomy: PrototypeLoss(NUM_NODES, DIM, 0.2),
    "hcsc": lambda taxonomy: hcsc_loss(),
}


def loss_setup(name: str, tokenizer, taxonomy) -> tuple[torch.nn.Module, object, dict]:
    """The loss, its training set, and trainer options (HCSC: cluster labels and momentum keys)."""
    loss = LOSSES[name](taxonomy)
    if name == "hcsc":
        dataset = toy_dataset(tokenizer, taxonomy, count=16, cluster_ids=cluster_column(16))
        return loss, dataset, {"momentum": 0.9, "taxonomy": taxonomy}
    return loss, toy_dataset(tokenizer, taxonomy, count=16), {"taxonomy": taxonomy}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_cached_step_has_the_gradients_of_the_full_batch_step(tmp_path, text_setup, taxonomy, name) -> None:
    loss, dataset, options = loss_setup(name, text_setup[1], taxonomy)
    plain = make_trainer(tmp_path, text_setup, loss, dataset, views=2, **options)
    cached = make_trainer(tmp_path, text_setup, loss, dataset, mini_batch_size=2, views=2, **options)
    batch = first_batch(plain)
    expected = step_gradients(plain, batch)
    assert_same_gradients(step_gradients(cached, batch), expected)
    if any(True for _ in loss.parameters()):
        assert any(name.startswith("loss.") for name in expected), "the loss's parameters got gradients"
    if name == "hcsc":
        keys, _ = cached.loss.queue.contents()
        torch.testing.assert_close(keys, plain.loss.queue.contents()[0])
        assert len(cached.loss.queue) == 16 + 8  # the step enqueued its keys once


def test_a_short_last_batch_is_split_into_a_shorter_last_mini_batch(tmp_path, text_setup, taxonomy) -> None:
    dataset = toy_dataset(text_setup[1], taxonomy, count=16)
    plain = make_trainer(tmp_path, text_setup, SupConLoss(), dataset)
    cached = make_trainer(tmp_path, text_setup, SupConLoss(), dataset, mini_batch_size=4)
    batch = first_batch(plain, size=7)
    assert_same_gradients(step_gradients(cached, batch), step_gradients(plain, batch))


def test_lora_encoder(tmp_path, text_setup, taxonomy) -> None:
    from peft import LoraConfig

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    dataset = toy_dataset(text_setup[1], taxonomy, count=16)
    plain = make_trainer(tmp_path, text_setup, SupConLoss(), dataset, lora=lora)
    cached = make_trainer(tmp_path, text_setup, SupConLoss(), dataset, mini_batch_size=2, lora=lora)
    batch = first_batch(plain)
    expected = step_gradients(plain, batch)
    assert any("lora_" in name for name in expected) and not any("query.base_layer" in n for n in expected)
    assert_same_gradients(step_gradients(cached, batch), expected)


# ---- views: dropout replay and image augmentations ----


def test_dropout_views_replay_in_one_mini_batch_as_in_the_plain_step(
    tmp_path, dropout_setup, taxonomy
) -> None:
    """One mini-batch of the whole batch consumes the random stream as the plain step does, so with
    dropout active the gradients equal the plain step's, whether the mini-batch's graph is kept from
    the first pass or the second pass replays the masks."""
    dataset = toy_dataset(dropout_setup[1], taxonomy, count=16)
    plain = make_trainer(tmp_path, dropout_setup, SupConLoss(), dataset, views=2)
    cached = make_trainer(tmp_path, dropout_setup, SupConLoss(), dataset, views=2, mini_batch_size=8)
    batch = first_batch(plain)
    plain.model.train()
    with torch.no_grad():
        views, _, _ = plain.embed_views(plain.model, plain._split_inputs(plain._prepare_inputs(batch))[0])
    assert not torch.allclose(views[:, 0], views[:, 1]), "dropout makes the two views differ"
    expected = step_gradients(plain, batch)
    assert_same_gradients(step_gradients(cached, batch), expected)
    replayed = make_trainer(tmp_path, dropout_setup, SupConLoss(), dataset, views=2, mini_batch_size=8)
    replayed.accelerator.state.num_processes = 2  # as under DDP: every mini-batch is re-embedded
    try:
        assert_same_gradients(step_gradients(replayed, batch), expected)
        assert not replayed.grad_cache.keep_last_graph
    finally:
        replayed.accelerator.state.num_processes = 1


def reference_in_mini_batches(trainer: ContrastiveTrainer, batch: dict, mini_batch_size: int, seed: int = 1):
    """Gradients of the full-batch loss whose forward pass ran mini-batch by mini-batch with its graph
    (each mini-batch's dropout drawn in turn from the same random stream as the cached step)."""
    torch.manual_seed(seed)
    model = trainer.model.train()
    model_inputs, label_inputs = trainer._split_inputs(trainer._prepare_inputs(batch))
    viewed = trainer.view_maker(model_inputs)
    size = next(iter(model_inputs.values())).shape[0]
    parts = [
        split_views(model(**view_rows(viewed, 2, size, rows)).embeddings, 2)
        for rows in mini_batch_slices(size, mini_batch_size)
    ]
    trainer._score(torch.cat(parts), label_inputs, record=False).backward()
    return gradients(trainer)


def test_dropout_views_replay_across_mini_batches(tmp_path, dropout_setup, taxonomy) -> None:
    dataset = toy_dataset(dropout_setup[1], taxonomy, count=16)
    reference = make_trainer(tmp_path, dropout_setup, SupConLoss(), dataset, views=2)
    cached = make_trainer(tmp_path, dropout_setup, SupConLoss(), dataset, views=2, mini_batch_size=2)
    batch = first_batch(reference)
    expected = reference_in_mini_batches(reference, batch, 2)
    assert_same_gradients(step_gradients(cached, batch), expected)
    other_seed = make_trainer(tmp_path, dropout_setup, SupConLoss(), dataset, views=2, mini_batch_size=2)
    moved = step_gradients(other_seed, batch, seed=2)
    assert relative_difference(moved["head.layers.0.weight"], expected["head.layers.0.weight"]) > 1e-3


def count_forward_passes(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("keep_last_graph", [True, False])
def test_last_mini_batch_graph_is_kept_or_replayed_with_the_same_gradients(
    keep_last_graph, dropout_setup, taxonomy
) -> None:
    """Pass 1 keeps the last mini-batch's graph (one encoder pass fewer per step) or, as under data
    parallelism, pass 3 re-embeds it: the gradients are the same either way."""
    path, tokenizer = dropout_setup
    torch.manual_seed(0)
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=DIM).double().train()
    batch = {key: value for key, value in tokenizer(["a b c", "d e", "f g h i", "j"] * 2, padding=True,
                                                    return_tensors="pt").items()}
    target = torch.randn(8, 1, DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def encode(inputs):
        return model(**inputs).embeddings.unsqueeze(1)

    torch.manual_seed(1)
    reference = [encode(view_rows(batch, 1, 8, rows)) for rows in mini_batch_slices(8, 2)]
    (torch.cat(reference) * target).sum().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    calls = count_forward_passes(model)
    cache = GradCache(2, keep_last_graph=keep_last_graph)
    torch.manual_seed(1)
    cached = cache.embed(encode, batch, 1, 8)
    assert (cached.last_graph is not None) is keep_last_graph
    (cached.embeddings * target).sum().backward()
    cache.backward(encode, batch, 1, cached)
    assert calls[0] == (7 if keep_last_graph else 8)
    assert cached.last_graph is None, "the kept graph is released after its backward pass"
    found = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    assert_same_gradients(found, expected)


def test_augmented_image_views(tmp_path) -> None:
    vit = save_tiny_vit(tmp_path / "vit")
    processor = AutoImageProcessor.from_pretrained(vit)
    pixels = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch = {"pixel_values": pixels, "labels": torch.arange(8) % 3}
    trainers = [
        make_trainer(tmp_path, (vit, processor), SupConLoss(), None, views=2, mini_batch_size=size)
        for size in (None, 2)
    ]
    plain, cached = (step_gradients(trainer, batch) for trainer in trainers)
    assert_same_gradients(cached, plain)


# ---- the Trainer loop: gradient accumulation ----


class GradientRecorder(TrainerCallback):
    """Keeps the gradients the optimizer is about to apply, at each optimizer step."""

    def __init__(self, trainer_ref: list) -> None:
        self.trainer_ref = trainer_ref
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.steps.append(gradients(self.trainer_ref[0]))


def train_and_record(tmp_path, setup, loss, dataset, mini_batch_size, float64=True, **training):
    holder: list = []
    recorder = GradientRecorder(holder)
    trainer = make_trainer(
        tmp_path,
        setup,
        loss,
        dataset,
        mini_batch_size=mini_batch_size,
        float64=float64,
        views=2,
        batch_sampler="random",
        callbacks=[recorder],
        training={"logging_steps": 1, **training},
    )
    holder.append(trainer)
    trainer.train()
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return recorder.steps, logged


def test_gradient_accumulation_scales_as_the_plain_step(tmp_path, text_setup, taxonomy) -> None:
    dataset = toy_dataset(text_setup[1], taxonomy, count=16)
    loss = RegLoss(NUM_NODES, DIM, 0.2)
    training = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 2}
    plain_steps, plain_losses = train_and_record(tmp_path, text_setup, loss, dataset, None, **training)
    cached_steps, cached_losses = train_and_record(tmp_path, text_setup, loss, dataset, 2, **training)
    assert len(plain_steps) == len(cached_steps) == 2
    for cached, plain in zip(cached_steps, plain_steps):
        assert_same_gradients(cached, plain)
    assert cached_losses == pytest.approx(plain_losses, rel=1e-9)


def test_bf16_autocast(tmp_path, text_setup, taxonomy) -> None:
    """Under bf16 autocast (CPU) the cached step's gradients match the plain step's within 5e-3 (relative
    norm of the difference over all parameters): the chunked forward passes round differently in bf16."""
    dataset = toy_dataset(text_setup[1], taxonomy, count=16)
    runs = [
        train_and_record(tmp_path, text_setup, SupConLoss(), dataset, size, float64=False, bf16=True)
        for size in (None, 2)
    ]
    (plain,), (cached,) = (steps for steps, _ in runs)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in cached.values())
    total = torch.stack([g.norm() for g in plain.values()]).norm()
    difference = torch.stack([(cached[name] - plain[name]).norm() for name in plain]).norm()
    assert difference / total < 5e-3  # bf16 against float32 differs by about 0.1 here
    assert runs[0][1] == pytest.approx(runs[1][1], rel=1e-2)


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path) -> None:
    """Two processes of 4 examples, cached in mini-batches of 2, take the step of one process of 8."""
    model_dir = tiny_text_setup(tmp_path / "bert", **NO_DROPOUT)[0]
    runs = {}
    for label, command, batch, mini in (
        ("single", [sys.executable], 8, "none"),
        ("ddp", torchrun_command(2), 4, "2"),
    ):
        output = tmp_path / label / "out.pt"
        output.parent.mkdir()
        run_script([*command, str(SCRIPT), str(model_dir), str(output), str(batch), mini])
        runs[label] = torch.load(output)
    assert runs["single"]["world_size"] == 1 and runs["ddp"]["world_size"] == 2
    assert runs["ddp"]["loss"] == pytest.approx(runs["single"]["loss"], rel=1e-9)
    assert any(name.startswith("loss.") for name in runs["single"]["gradients"])
    assert_same_gradients(runs["ddp"]["gradients"], runs["single"]["gradients"])


# ---- configuration errors ----


@pytest.mark.parametrize(
    ("mini_batch_size", "message"),
    [
        (3, "mini_batch_size 3 does not divide per_device_train_batch_size 8"),
        (0, "mini_batch_size must be a positive integer"),
        (-2, "mini_batch_size must be a positive integer"),
        (2.0, "mini_batch_size must be a positive integer"),
        (True, "mini_batch_size must be a positive integer"),
    ],
)
def test_mini_batch_size_must_tile_the_batch(
    tmp_path, text_setup, taxonomy, mini_batch_size, message
) -> None:
    dataset = toy_dataset(text_setup[1], taxonomy, count=16)
    with pytest.raises(ConfigError, match=message):
        make_trainer(tmp_path, text_setup, SupConLoss(), dataset, mini_batch_size=mini_batch_size)


def test_optimizers_that_step_inside_backward_are_refused(tmp_path, text_setup, taxonomy) -> None:
    dataset = toy_dataset(text_setup[1], taxonomy, count=16)
    with pytest.raises(ConfigError, match="mini_batch_size does not work with the lomo optimizer"):
        make_trainer(
            tmp_path, text_setup, SupConLoss(), dataset, mini_batch_size=4, training={"optim": "lomo"}
        )


def test_grad_cache_checks_its_batch() -> None:
    cache = GradCache(4)
    cache.check_batch_size(12)
    with pytest.raises(ConfigError, match="does not divide the sampler's batch 10"):
        cache.check_batch_size(10, "the sampler's batch")
    assert mini_batch_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]


def test_view_rows_keeps_every_view_of_the_mini_batch() -> None:
    viewed = {"input_ids": torch.arange(12).view(6, 2), "flag": 7}  # 2 views of 3 examples
    rows = view_rows(viewed, num_views=2, batch_size=3, examples=slice(1, 3))
    assert rows["input_ids"].tolist() == [[2, 3], [4, 5], [8, 9], [10, 11]] and rows["flag"] == 7


# ---- the recipe ----


def test_recipe_trains_with_stage1_mini_batch_size(tmp_path, monkeypatch) -> None:
    from recipe_toy import toy_config

    from hiercon.cli import main as cli_main
    from hiercon.training import grad_cache

    passes = []
    original = grad_cache.GradCache.backward

    def counting(self, encode, viewed, num_views, cached, no_sync=None):
        passes.append(len(cached.mini_batches))
        return original(self, encode, viewed, num_views, cached, no_sync)

    monkeypatch.setattr(grad_cache.GradCache, "backward", counting)
    short = {"max_steps": 2, "per_device_train_batch_size": 8, "save_steps": 2}
    config = toy_config(tmp_path, stage1={**short, "sampler": "multilabel"}, stage2={**short, "max_steps": 1})
    assert cli_main(["train", str(config), "--stage1.mini_batch_size", "4"]) == 0
    assert passes == [2, 2]
    assert (tmp_path / "model" / "config.json").is_file()


def test_recipe_refuses_a_mini_batch_size_that_does_not_divide_the_batch(tmp_path) -> None:
    from recipe_toy import toy_config

    from hiercon.recipe.config import load_recipe

    config = toy_config(tmp_path, stage1={"mini_batch_size": 3})
    with pytest.raises(ConfigError, match="stage1.mini_batch_size 3 does not divide"):
        load_recipe(config)
    with pytest.raises(ConfigError, match="stage1.mini_batch_size must be a positive integer"):
        load_recipe(toy_config(tmp_path, stage1={"mini_batch_size": 0}))
    assert load_recipe(toy_config(tmp_path, stage1={"mini_batch_size": 4})).stage1.mini_batch_size == 4
    assert load_recipe(toy_config(tmp_path, stage1={"mini_batch_size": None})).stage1.mini_batch_size is None
