"""A toy stage-1 task with clear label structure: texts made of label-specific words."""

from __future__ import annotations

import random
from pathlib import Path

from datasets import Dataset
from tiny_models import WORDS

from hiercon import LabelTaxonomy

LEAF_WORDS = {
    "joy": WORDS[0:10],
    "sadness": WORDS[10:20],
    "anger": WORDS[20:30],
    "curiosity": WORDS[30:40],
}
EDGES = [
    ("root", "positive"),
    ("root", "negative"),
    ("root", "ambiguous"),
    ("positive", "joy"),
    ("negative", "sadness"),
    ("negative", "anger"),
    ("ambiguous", "curiosity"),
]


def toy_taxonomy() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(EDGES, root="root")


def toy_rows(count: int, seed: int = 0, words_per_text: int = 6) -> list[tuple[str, str]]:
    """``count`` (text, leaf) pairs, leaves in turn, each text made of its leaf's words."""
    rng = random.Random(seed)
    leaves = list(LEAF_WORDS)
    rows = []
    for i in range(count):
        leaf = leaves[i % len(leaves)]
        rows.append((" ".join(rng.choices(LEAF_WORDS[leaf], k=words_per_text)), leaf))
    return rows


def toy_dataset(
    tokenizer, taxonomy: LabelTaxonomy, count: int = 32, seed: int = 0, **extra_columns
) -> Dataset:
    """Tokenized toy texts with multi-hot ``labels`` over all taxonomy nodes (float32)."""
    rows = toy_rows(count, seed)
    encoded = tokenizer([text for text, _ in rows], truncation=True, max_length=16)
    labels = taxonomy.encode([[leaf] for _, leaf in rows]).tolist()
    columns = {**encoded, "labels": labels, **extra_columns}
    return Dataset.from_dict(columns)


def tiny_text_setup(folder: Path, **bert_overrides):
    """A saved tiny BERT folder and its tokenizer."""
    from tiny_models import save_tiny_bert
    from transformers import AutoTokenizer

    path = save_tiny_bert(folder, **bert_overrides)
    return path, AutoTokenizer.from_pretrained(path)
