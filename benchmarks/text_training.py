"""Training and scoring loops for the text benchmarks (plain PyTorch, dynamic padding, 2 CPU threads).

The same loops drive the plain BCE baseline and hiercon's stage 2, so that both spend identical
work per encoder pass; only stage 1 differs between methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

EpochCallback = Callable[[int], None]


def batches(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    return [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]


def length_grouped_batches(
    texts: Sequence[str], batch_size: int, generator: torch.Generator, group_batches: int = 50
) -> list[list[int]]:
    """Shuffled batches of similar-length texts (as ``group_by_length`` in transformers' Trainer).

    A random permutation is cut into groups of ``group_batches`` batches; each group is sorted by
    text length and split into batches, and the batches are shuffled. Padding shrinks to about the
    batch's own length while every epoch still sees a fresh random grouping.
    """
    order = torch.randperm(len(texts), generator=generator).tolist()
    group = batch_size * group_batches
    result = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: len(texts[i]))
        result += batches(chunk, batch_size)
    shuffle = torch.randperm(len(result), generator=generator).tolist()
    return [result[i] for i in shuffle]


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> dict:
    return tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def optimizer_and_schedule(
    parameters, learning_rate: float, total_steps: int, warmup_ratio: float = 0.1
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    warmup = math.ceil(total_steps * warmup_ratio)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def finetune_multilabel(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    targets: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    max_length: int,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
) -> list[float]:
    """Fine-tune a ``*ForSequenceClassification`` model with BCE; returns the mean loss per epoch."""
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(texts) / batch_size)
    optimizer, schedule = optimizer_and_schedule(model.parameters(), learning_rate, epochs * steps_per_epoch)
    loss_fn = nn.BCEWithLogitsLoss()
    epoch_losses = []
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch in length_grouped_batches(texts, batch_size, generator):
            inputs = tokenize(tokenizer, [texts[i] for i in batch], max_length)
            logits = model(**inputs).logits
            loss = loss_fn(logits, torch.as_tensor(targets[batch], dtype=torch.float32))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return epoch_losses


@torch.no_grad()
def predict_sigmoid(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 128,
) -> np.ndarray:
    """Sigmoid scores ``[n, num_labels]``; batches are formed by length to keep padding small."""
    model.eval()
    order = np.argsort([len(text) for text in texts])
    scores = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for batch in batches(order.tolist(), batch_size):
        logits = model(**tokenize(tokenizer, [texts[i] for i in batch], max_length)).logits
        scores[batch] = torch.sigmoid(logits.float()).numpy()
    return scores
