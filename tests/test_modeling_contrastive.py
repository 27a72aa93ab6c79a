"""ContrastiveModel: pooling, projection head, views, save/load, LoRA, vision, checkpointing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from stage1_toy import tiny_text_setup, toy_dataset, toy_taxonomy
from tiny_models import tiny_bert_config
from transformers import AutoModel, BertModel, TrainingArguments, ViTConfig, ViTModel

from hiercon import ContrastiveModel, ContrastiveTrainer
from hiercon.errors import ConfigError
from hiercon.losses import SupConLoss
from hiercon.modeling import AugmentationConfig, AugmentedViews, DropoutViews
from hiercon.modeling.views import split_views


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    return tiny_text_setup(tmp_path_factory.mktemp("tiny_bert"))


def texts(tokenizer, items=("happy glad joy", "sad cry", "what why how maybe")):
    return dict(tokenizer(list(items), padding=True, return_tensors="pt"))


def test_pooling_modes_and_auto_choice(text_setup, vit_dir):
    path, tokenizer = text_setup
    assert ContrastiveModel.from_encoder(path).pooling == "pooler"  # BERT's classifier reads the pooler
    assert ContrastiveModel.from_encoder(vit_dir).pooling == "cls"  # ViT's classifier reads [CLS]
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=None).eval()
    batch = texts(tokenizer)
    with torch.no_grad():
        pooled = model.encode(**batch)
        hidden = model.encoder(**batch).last_hidden_state
    mask = batch["attention_mask"][1].bool()
    assert torch.allclose(pooled[1], hidden[1][mask].mean(0), atol=1e-6)
    assert model.embedding_dim == 32
    cls = ContrastiveModel.from_encoder(path, pooling="cls").eval()
    with torch.no_grad():
        assert torch.allclose(cls.encode(**batch), cls.encoder(**batch).last_hidden_state[:, 0])


def test_mean_pooling_ignores_padding(text_setup):
    path, tokenizer = text_setup
    model = ContrastiveModel.from_encoder(path, pooling="mean").eval()
    alone = texts(tokenizer, ["sad cry"])
    padded = texts(tokenizer, ["sad cry", "what why how maybe think wonder"])
    with torch.no_grad():
        assert torch.allclose(model(**alone).embeddings[0], model(**padded).embeddings[0], atol=1e-5)


def test_forward_gives_unit_projections(text_setup):
    path, tokenizer = text_setup
    model = ContrastiveModel.from_encoder(path, projection_dim=12, projection_hidden_dim=20)
    out = model(**texts(tokenizer))
    assert out.embeddings.shape == (3, 12) and out.pooled.shape == (3, 32)
    assert torch.allclose(out.embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert [layer.out_features for layer in model.head.layers if hasattr(layer, "out_features")] == [20, 12]
    with pytest.raises(ConfigError, match="projection_dim"):
        ContrastiveModel.from_encoder(path, projection_dim=0)
    with pytest.raises(ConfigError, match="pooling must be one of"):
        ContrastiveModel.from_encoder(path, pooling="max")


def test_pooler_pooling_needs_a_pooler():
    no_pooler_bert = BertModel(tiny_bert_config(50), add_pooling_layer=False)
    with pytest.raises(ConfigError, match="pooler"):
        ContrastiveModel.from_encoder(no_pooler_bert, pooling="pooler")
    assert ContrastiveModel.from_encoder(no_pooler_bert).pooling == "cls"
    config = ViTConfig(
        image_size=28,
        patch_size=7,
        num_channels=1,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    with pytest.raises(ConfigError, match="pooler"):
        ContrastiveModel.from_encoder(ViTModel(config, add_pooling_layer=False), pooling="pooler")


def test_wrong_modality_is_refused(text_setup, vit_dir):
    path, tokenizer = text_setup
    vision = ContrastiveModel.from_encoder(vit_dir)
    with pytest.raises(ConfigError, match="vision encoder needs 'pixel_values'"):
        vision(**texts(tokenizer))
    text = ContrastiveModel.from_encoder(path)
    with pytest.raises(ConfigError, match="text encoder needs 'input_ids'"):
        text(pixel_values=torch.zeros(1, 1, 28, 28))


def test_vision_model_given_text_dataset_fails_before_training(tmp_path, text_setup, vit_dir):
    _, tokenizer = text_setup
    trainer = ContrastiveTrainer(
        model=ContrastiveModel.from_encoder(vit_dir),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, max_steps=1),
        train_dataset=toy_dataset(tokenizer, toy_taxonomy(), count=8),
        loss=SupConLoss(),
    )
    with pytest.raises(ConfigError, match="vision model needs a 'pixel_values' column.*input_ids"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_save_pretrained_writes_a_plain_encoder(tmp_path, text_setup):
    path, tokenizer = text_setup
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=8).eval()
    model.loss_info = {"loss": "SupConLoss", "loss_config": {"temperature": 0.1}, "citation": "@x"}
    model.save_pretrained(tmp_path / "saved")
    names = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "projection_head.safetensors",
        "hiercon_contrastive.json",
    } <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    plain = AutoModel.from_pretrained(tmp_path / "saved")
    assert type(plain) is type(model.encoder)
    for (name, a), (_, b) in zip(plain.state_dict().items(), model.encoder.state_dict().items()):
        assert torch.equal(a, b), name
    restored = ContrastiveModel.from_pretrained(tmp_path / "saved").eval()
    batch = texts(tokenizer)
    with torch.no_grad():
        assert torch.allclose(restored(**batch).embeddings, model(**batch).embeddings)
    assert restored.pooling == "mean" and restored.loss_info["loss"] == "SupConLoss"
    assert restored.stage1_info()["base_model"] == str(path)
    with pytest.raises(ConfigError, match="hiercon_contrastive.json"):
        ContrastiveModel.from_pretrained(path)


def test_lora_trains_in_stage1_and_merges_to_a_plain_encoder(tmp_path, text_setup):
    path, tokenizer = text_setup
    taxonomy = toy_taxonomy()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=8, peft_config=lora)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("head.") for name in trainable)
    frozen_before = model.encoder.get_base_model().embeddings.word_embeddings.weight.clone()
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    trainer = ContrastiveTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path / "run"),
            per_device_train_batch_size=8,
            max_steps=3,
            learning_rate=1e-2,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
        ),
        train_dataset=toy_dataset(tokenizer, taxonomy, count=16),
        loss=SupConLoss(),
        processing_class=tokenizer,
    )
    trainer.train()
    assert torch.equal(model.encoder.get_base_model().embeddings.word_embeddings.weight, frozen_before)
    assert any(not torch.equal(p, lora_before[n]) for n, p in model.named_parameters() if "lora_B" in n)
    assert model.stage1_info()["peft"]["r"] == 4

    model.eval()
    batch = texts(tokenizer)
    with torch.no_grad():
        expected = model(**batch).embeddings
    trainer.save_model(str(tmp_path / "saved"))
    assert (tmp_path / "saved" / "adapter" / "adapter_model.safetensors").is_file()
    restored = ContrastiveModel.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        assert torch.allclose(restored(**batch).embeddings, expected, atol=1e-5)

    merged = model.merged_encoder()
    assert type(merged) is BertModel and model.is_peft
    model.merge_adapter()
    assert not model.is_peft and model.stage1_info()["peft"]["merged"] is True
    with torch.no_grad():
        assert torch.allclose(model(**batch).embeddings, expected, atol=1e-5)


def test_gradient_checkpointing_passes_through(text_setup):
    path, tokenizer = text_setup
    model = ContrastiveModel.from_encoder(path, pooling="mean")
    model.gradient_checkpointing_enable()
    assert model.encoder.is_gradient_checkpointing
    model.train()
    model(**texts(tokenizer)).embeddings.sum().backward()
    assert model.encoder.encoder.layer[0].attention.self.query.weight.grad is not None


def test_dropout_views_repeat_the_batch_and_split_back():
    inputs = {"input_ids": torch.arange(6).view(3, 2), "attention_mask": torch.ones(3, 2)}
    viewed = DropoutViews(2)(inputs)
    assert torch.equal(viewed["input_ids"], torch.cat([inputs["input_ids"]] * 2))
    rows = torch.arange(12.0).view(6, 2)
    split = split_views(rows, 2)
    assert split.shape == (3, 2, 2) and torch.equal(split[1, 1], rows[4])
    assert DropoutViews(1)(inputs) is inputs


def test_augmented_views_are_seeded_and_differ():
    pixels = torch.rand(4, 1, 28, 28)
    first = AugmentedViews(2, seed=3)({"pixel_values": pixels})["pixel_values"]
    again = AugmentedViews(2, seed=3)({"pixel_values": pixels})["pixel_values"]
    assert first.shape == (8, 1, 28, 28) and torch.equal(first, again)
    assert not torch.allclose(first[:4], first[4:])
    identity = AugmentedViews(
        1,
        AugmentationConfig(
            crop_scale=(1.0, 1.0),
            crop_ratio=(1.0, 1.0),
            flip_probability=0.0,
            brightness=0.0,
            contrast=0.0,
            noise_std=0.0,
        ),
    )
    assert torch.allclose(identity({"pixel_values": pixels})["pixel_values"], pixels, atol=1e-5)
    flipped = AugmentedViews(
        1,
        AugmentationConfig(
            crop_scale=(1.0, 1.0),
            crop_ratio=(1.0, 1.0),
            flip_probability=1.0,
            brightness=0.0,
            contrast=0.0,
            noise_std=0.0,
        ),
    )
    assert torch.allclose(flipped({"pixel_values": pixels})["pixel_values"], pixels.flip(-1), atol=1e-5)
    with pytest.raises(ConfigError, match="crop_scale"):
        AugmentationConfig(crop_scale=(0.0, 1.0))


def _image_dataset(count: int = 16) -> Dataset:
    """Two classes of 28x28 images: bright top half or bright left half, plus noise."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(count):
        image = rng.normal(0, 0.1, (1, 28, 28)).astype(np.float32)
        if i % 2:
            image[:, :14, :] += 1.0
        else:
            image[:, :, :14] += 1.0
        images.append(image)
        labels.append([1.0, 0.0] if i % 2 else [0.0, 1.0])
    return Dataset.from_dict({"pixel_values": images, "labels": labels})


@pytest.mark.parametrize("precision", [{}, {"bf16": True}])
def test_vit_trains_on_two_augmented_views(tmp_path, vit_dir, precision):
    seen = []

    class Spy(SupConLoss):
        def forward(self, embeddings, labels=None):
            seen.append((embeddings.shape, embeddings.dtype))
            return super().forward(embeddings, labels)

    model = ContrastiveModel.from_encoder(vit_dir, projection_dim=8)
    trainer = ContrastiveTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path),
            per_device_train_batch_size=8,
            max_steps=2,
            logging_steps=1,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            **precision,
        ),
        train_dataset=_image_dataset(),
        loss=Spy(),
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(value) for value in losses)
    assert seen[0][0] == (8, 2, 8)
