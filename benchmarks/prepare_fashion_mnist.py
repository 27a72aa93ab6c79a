"""Fashion-MNIST as the Hub serves it, built offline from the original IDX files.

``zalando-datasets/fashion_mnist`` has the splits ``train`` and ``test`` with the columns ``image``
(a PIL image) and ``label`` (a ``ClassLabel`` with the class names). This script writes the same
``DatasetDict`` with ``save_to_disk``, so ``configs/fashion_mnist.yaml`` and the Fashion-MNIST
benchmark configs run without the Hub (``--data.dataset`` pointing at the folder):

    python benchmarks/prepare_fashion_mnist.py                 # -> outputs/data/fashion_mnist
    hiercon train configs/fashion_mnist.yaml --data.dataset outputs/data/fashion_mnist
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import REPO_ROOT, SHARED_DATA, load_fashion_mnist
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

#: The class names of the Hub data set, in label order.
CLASS_NAMES = (
    "T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEFAULT_OUTPUT = REPO_ROOT / "outputs" / "data" / "fashion_mnist"


def split_dataset(data_dir: Path, split: str) -> Dataset:
    """One split: the images as PIL images, the labels as class ids with the Hub's class names."""
    images, labels = load_fashion_mnist(data_dir, split)
    features = Features({"image": Image(), "label": ClassLabel(names=list(CLASS_NAMES))})
    return Dataset.from_dict({"image": list(np.asarray(images)), "label": labels.tolist()}, features=features)


def prepare(data_dir: Path = SHARED_DATA / "fashion_mnist", output: Path = DEFAULT_OUTPUT) -> Path:
    """Writes the ``DatasetDict`` once; an existing folder is kept."""
    if (output / "dataset_dict.json").is_file():
        return output
    splits = DatasetDict({split: split_dataset(data_dir, split) for split in ("train", "test")})
    splits.save_to_disk(str(output))
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA / "fashion_mnist")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    options = parser.parse_args()
    print(prepare(options.data_dir, options.output))


if __name__ == "__main__":
    main()
