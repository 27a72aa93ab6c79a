"""Tiny text and vision encoders built from configs (no downloads), saved like Hub checkpoints, and
TrainingArguments for a few quick CPU steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    TrainingArguments,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

WORDS = [
    "happy", "glad", "joy", "love", "great", "thanks", "awesome", "nice", "fun", "win",
    "sad", "cry", "loss", "grief", "sorry", "miss", "alone", "hurt", "pain", "lost",
    "angry", "mad", "hate", "annoying", "stupid", "rage", "awful", "worst", "bad", "ugh",
    "what", "why", "how", "maybe", "think", "wonder", "curious", "question", "ok", "fine",
]


def write_tiny_tokenizer(folder: Path) -> BertTokenizerFast:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.model_max_length = 32
    tokenizer.save_pretrained(folder)
    return tokenizer


def tiny_bert_config(vocab_size: int, **overrides) -> BertConfig:
    settings = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def save_tiny_bert(folder: Path, seed: int = 0, **overrides) -> Path:
    """A 2-layer, 32-wide BERT with its tokenizer, saved to ``folder`` (safetensors)."""
    tokenizer = write_tiny_tokenizer(folder)
    torch.manual_seed(seed)
    model = BertModel(tiny_bert_config(len(tokenizer), **overrides))
    model.save_pretrained(folder)
    return folder


def save_tiny_vit(folder: Path, seed: int = 0, image_size: int = 28, num_channels: int = 1) -> Path:
    """A 2-layer, 32-wide ViT with its image processor, saved to ``folder`` (safetensors)."""
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=image_size,
        patch_size=7,
        num_channels=num_channels,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    ViTModel(config).save_pretrained(folder)
    processor = ViTImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5] * num_channels,
        image_std=[0.5] * num_channels,
        do_resize=True,
    )
    processor.save_pretrained(folder)
    return folder


def quick_args(folder: str | Path, **settings: Any) -> TrainingArguments:
    """TrainingArguments for a few CPU steps: no checkpoints, no reporting, no progress bars.

    ``settings`` (batch size, learning rate, steps, ...) add to these or override them.
    """
    defaults: dict[str, Any] = dict(
        output_dir=str(folder), report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True
    )
    return TrainingArguments(**{**defaults, **settings})
