"""The two-level emotion taxonomy, toy texts and seeded tiny classifiers that the classifier tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModel

from hiercon import LabelTaxonomy, build_classifier

EMOTION_EDGES = [
    ("root", "positive"),
    ("root", "negative"),
    ("positive", "joy"),
    ("positive", "love"),
    ("negative", "anger"),
    ("negative", "sadness"),
]

#: Twelve short texts with their emotion names: single labels, two multi-label rows and one unlabelled.
EMOTION_TEXTS = [
    ("happy glad joy", ["joy"]),
    ("joy fun win", ["joy"]),
    ("great happy nice", ["joy"]),
    ("love thanks awesome", ["love"]),
    ("love nice glad", ["love"]),
    ("angry mad hate", ["anger"]),
    ("rage awful worst", ["anger"]),
    ("sad cry grief", ["sadness"]),
    ("sorry miss alone", ["sadness"]),
    ("happy love sad cry", ["joy", "love", "sadness"]),
    ("angry hate sad", ["anger", "sadness"]),
    ("what ok fine", []),
]


def emotion_taxonomy() -> LabelTaxonomy:
    """positive -> {joy, love}, negative -> {anger, sadness}."""
    return LabelTaxonomy.from_edges(EMOTION_EDGES)


def emotion_dataset(tokenizer: Any) -> Dataset:
    """:data:`EMOTION_TEXTS` as a dataset of ``text``, label-name ``labels`` and tokens padded to 8."""
    data = Dataset.from_dict(
        {"text": [text for text, _ in EMOTION_TEXTS], "labels": [names for _, names in EMOTION_TEXTS]}
    )
    return data.map(lambda batch: tokenizer(batch["text"], padding="max_length", max_length=8), batched=True)


def tiny_classifier(bert_dir: str | Path, taxonomy: LabelTaxonomy | None = None, **kwargs: Any) -> torch.nn.Module:
    """A classifier on the saved encoder at ``bert_dir`` (taxonomy default: :func:`emotion_taxonomy`),
    its new head drawn with seed 0."""
    torch.manual_seed(0)
    taxonomy = emotion_taxonomy() if taxonomy is None else taxonomy
    return build_classifier(AutoModel.from_pretrained(bert_dir), taxonomy, **kwargs)
