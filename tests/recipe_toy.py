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


def write_toy_images(root):
    import numpy as np
    from datasets import ClassLabel, Dataset, DatasetDict, Features
    from datasets import Image as ImageFeature
    from PIL import Image
    from tiny_models import save_tiny_vit

    save_tiny_vit(root / "vit", num_channels=3)
    rng = np.random.default_rng(0)
    names = ["shirt", "trouser", "sandal", "bag"]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=names)})

    def split(size):
        labels = rng.integers(0, len(names), size)
        pixels = [(rng.random((28, 28)) * 60 + 60 * label).astype(np.uint8) for label in labels]
        images = [Image.fromarray(array, mode="L").convert("RGB") for array in pixels]
        return Dataset.from_dict({"image": images, "label": labels.tolist()}, features=features)

    DatasetDict({"train": split(32), "test": split(16)}).save_to_disk(str(root / "images"))
    taxonomy = "parent\tchild\nroot\tclothes\nroot\tgoods\nclothes\tshirt\nclothes\ttrouser\ngoods\tsandal\ngoods\tbag\n"
    (root / "taxonomy.tsv").write_text(taxonomy, encoding="utf-8")


def toy_image_config(root: Path, **sections: dict) -> Path:
    """A recipe file for the toy images and a tiny ViT under ``root``; ``sections`` update its sections."""
    write_toy_images(root)
    settings = {"max_steps": 2, "per_device_train_batch_size": 8, "save_steps": 2}
    config = {
        "model": {"model_name_or_path": "vit", "pooling": "cls", "projection_dim": 16},
        "data": {
            "dataset": "images",
            "text_column": None,
            "image_column": "image",
            "label_columns": ["label"],
            "label_format": "ids",
            "taxonomy": "taxonomy.tsv",
            "validation_split": None,
            "validation_fraction": 0.25,
        },
        "stage1": {**settings, "num_views": 2, "sampler": "random"},
        "stage2": {**settings, "mode": "linear_probe"},
        "output": {"output_dir": str(root / "model"), "plots": False},
    }
    for section, values in sections.items():
        config[section].update(values)
    path = root / "vision.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
