"""A toy recipe for the recipe tests: a tiny BERT, a 2-level taxonomy and a few dozen short texts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml
from tiny_models import WORDS, save_tiny_bert

GROUPS = {"joy": WORDS[0:10], "sadness": WORDS[10:20], "anger": WORDS[20:30], "curiosity": WORDS[30:40]}
TAXONOMY = (
    "parent\tchild\nroot\tpositive\nroot\tnegative\nroot\tambiguous\n"
    "positive\tjoy\nnegative\tsadness\nnegative\tanger\nambiguous\tcuriosity\n"
)
SPLIT_SIZES = {"train": 48, "validation": 16, "test": 16}


def write_toy_data(folder: Path, seed: int = 0) -> Path:
    """``train/validation/test.jsonl`` (fields ``text``, ``labels``: emotion names) and ``taxonomy.tsv``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, size in SPLIT_SIZES.items():
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for _ in range(size):
                labels = rng.sample(sorted(GROUPS), k=rng.choice([1, 1, 2]))
                text = " ".join(rng.choice(GROUPS[label]) for label in labels for _ in range(3))
                handle.write(json.dumps({"text": text, "labels": labels}) + "\n")
    (folder / "taxonomy.tsv").write_text(TAXONOMY, encoding="utf-8")
    return folder


def toy_config(root: Path, **sections: dict) -> Path:
    """A recipe file for the toy data and a tiny BERT under ``root``; ``sections`` update its sections."""
    if not (root / "bert" / "config.json").is_file():
        save_tiny_bert(root / "bert")
    if not (root / "data" / "taxonomy.tsv").is_file():
        write_toy_data(root / "data")
    config = {
        "model": {"model_name_or_path": "bert", "pooling": "mean", "projection_dim": 16, "max_length": 16},
        "data": {"dataset": "data", "taxonomy": "data/taxonomy.tsv"},
        "stage1": {
            "max_steps": 4,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "save_steps": 2,
            "logging_steps": 1,
            "num_views": 2,
        },
        "stage2": {
            "max_steps": 4,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "save_steps": 2,
            "logging_steps": 1,
        },
        "output": {"output_dir": str(root / "model"), "plots": False, "dataloader_num_workers": 0},
    }
    for section, values in sections.items():
        config[section].update(values)
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
