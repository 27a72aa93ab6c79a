"""Fashion-MNIST quality benchmark: cross-entropy vs hiercon's two-stage SupCon and HiMulConE on a small ViT.

A ViT (28x28, patch 7, hidden 64, 4 layers) is trained from scratch on a seeded subset of train and
scored on the full test split: accuracy on the 10 classes (fine) and on the derived coarse levels
(6 groups, 2 groups; a predicted class is mapped up the taxonomy), and kNN accuracy at each level
of the final model's features (test queries against the training subset). All methods spend the
same number of encoder passes per image; two-stage methods use two augmented views in stage 1 and
fine-tune the classifier built by ``hiercon.build_classifier`` with cross-entropy in stage 2.

    python benchmarks/fashion_mnist_quality.py --method ce
    python benchmarks/fashion_mnist_quality.py --method supcon
    python benchmarks/fashion_mnist_quality.py --method himulcone
    python benchmarks/fashion_mnist_quality.py --report
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    SHARED_DATA,
    PassBudget,
    environment,
    load_fashion_mnist,
    markdown_table,
    read_results,
    set_seed,
    write_json,
)

METHODS = ("ce", "supcon", "himulcone")
LEVELS = ("class", "l2", "l1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA / "fashion_mnist")
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--test-size", type=int, default=None, help="default: the full test split")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--stage1-epochs", type=int, default=4)
    parser.add_argument("--stage2-epochs", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="tiny ViT and subsets (< 1 minute)")
    args = parser.parse_args(argv)
    if not args.report and args.method is None:
        parser.error("give --method or --report")
    if args.quick:
        args.train_size, args.test_size, args.batch_size = 128, 64, 64
        args.stage1_epochs, args.stage2_epochs, args.hidden_size, args.layers = 1, 1, 32, 2
    return args


def run_name(args: argparse.Namespace) -> str:
    return f"fashion_mnist_{args.method}_lr{args.lr:g}" + ("_quick" if args.quick else "")


# --------------------------------------------------------------------------- data and taxonomy


class FashionTaxonomy:
    """The 10 -> 6 -> 2 taxonomy: class ids to the node ids of each level and level-wise class ids."""

    def __init__(self, data_dir: Path) -> None:
        from hiercon import LabelTaxonomy

        self.taxonomy = LabelTaxonomy.from_file(Path(data_dir) / "taxonomy_edges.tsv")
        self.class_nodes = [self.taxonomy.index(f"class:{c}") for c in range(10)]
        leaf_row = {int(leaf): row for row, leaf in enumerate(self.taxonomy.leaf_ids.tolist())}
        paths = self.taxonomy.leaf_paths.numpy()
        class_paths = np.stack([paths[leaf_row[node]] for node in self.class_nodes])  # [10, 3] coarse to fine
        self.level_of_class = {
            "l1": np.unique(class_paths[:, 0], return_inverse=True)[1],
            "l2": np.unique(class_paths[:, 1], return_inverse=True)[1],
            "class": np.arange(10),
        }

    def level_ids(self, class_ids: np.ndarray) -> dict[str, np.ndarray]:
        return {level: mapping[class_ids] for level, mapping in self.level_of_class.items()}


def pixel_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, 28, 28]`` -> float ``[n, 1, 28, 28]`` normalised to [-1, 1]."""
    return (torch.from_numpy(images.astype(np.float32) / 255.0) - 0.5).div(0.5).unsqueeze(1)


def load_split(args: argparse.Namespace, split: str, size: int | None) -> tuple[torch.Tensor, np.ndarray]:
    images, labels = load_fashion_mnist(args.data_dir, split)
    if size is not None and size < len(labels):
        picks = np.sort(np.random.default_rng(args.seed).permutation(len(labels))[:size])
        images, labels = images[picks], labels[picks]
    return pixel_tensor(images), labels


def vit_encoder(args: argparse.Namespace):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=28,
        patch_size=7,
        num_channels=1,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=4 if args.hidden_size % 4 == 0 else 2,
        intermediate_size=2 * args.hidden_size,
    )
    return ViTModel(config, add_pooling_layer=False)


# --------------------------------------------------------------------------- training


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=generator).split(batch_size))


def train_cross_entropy(
    classifier, pixels: torch.Tensor, labels: np.ndarray, epochs: int, args: argparse.Namespace
) -> list[float]:
    """Fine-tune an image classifier with cross-entropy on one augmented view per image."""
    from hiercon.modeling.views import AugmentedViews

    augment = AugmentedViews(1, seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    targets = torch.as_tensor(labels)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=args.lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(labels) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    epoch_losses = []
    for _ in range(epochs):
        classifier.train()
        running = []
        for batch in minibatches(len(labels), args.batch_size, generator):
            logits = classifier(**augment({"pixel_values": pixels[batch]})).logits
            loss = F.cross_entropy(logits, targets[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            running.append(loss.item())
        epoch_losses.append(float(np.mean(running)))
    return epoch_losses


def train_contrastive(model, loss, pixels: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace) -> list[float]:
    """Stage 1: two augmented views per image, the loss on the projected embeddings."""
    from hiercon.modeling.views import AugmentedViews, split_views

    views = AugmentedViews(2, seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps = args.stage1_epochs * math.ceil(len(labels) / args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    epoch_losses = []
    for _ in range(args.stage1_epochs):
        model.train()
        running = []
        for batch in minibatches(len(labels), args.batch_size, generator):
            embeddings = split_views(model(**views({"pixel_values": pixels[batch]})).embeddings, 2)
            value = loss.total(loss(embeddings, labels[batch]))
            value.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            running.append(value.item())
        epoch_losses.append(float(np.mean(running)))
    return epoch_losses


@torch.no_grad()
def logits_and_features(classifier, pixels: torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Class logits and the base model's [CLS] features (what the head reads)."""
    classifier.eval()
    logits, features = [], []
    for batch in pixels.split(batch_size):
        output = classifier(pixel_values=batch, output_hidden_states=True)
        logits.append(output.logits)
        hidden = output.hidden_states[-1][:, 0]
        features.append(classifier.vit.layernorm(hidden))
    return torch.cat(logits).numpy(), torch.cat(features).numpy()


def class_names() -> list[str]:
    return [f"class:{c}" for c in range(10)]


def build_method(args: argparse.Namespace, tax: FashionTaxonomy, train_labels: np.ndarray):
    """``(classifier, details)`` after stage 1 (two-stage methods) or a fresh classifier (``ce``)."""
    from hiercon import ContrastiveModel, build_classifier
    from hiercon.losses import HiMulConELoss, SupConLoss

    model = ContrastiveModel.from_encoder(vit_encoder(args))
    if args.method == "ce":
        return build_classifier(model, labels=class_names()), {}
    if args.method == "supcon":
        loss, labels = SupConLoss(temperature=args.temperature), torch.as_tensor(train_labels)
    else:
        node_ids = torch.as_tensor(tax.class_nodes)[torch.as_tensor(train_labels)]
        loss, labels = HiMulConELoss(taxonomy=tax.taxonomy, temperature=args.temperature), node_ids
    return None, {"model": model, "loss": loss, "labels": labels}


def run_method(args: argparse.Namespace) -> dict[str, Any]:
    from hiercon import build_classifier
    from hiercon.metrics.embedding import knn_level_accuracy

    set_seed(args.seed)
    tax = FashionTaxonomy(args.data_dir)
    train_pixels, train_labels = load_split(args, "train", args.train_size)
    test_pixels, test_labels = load_split(args, "test", args.test_size)
    budget = PassBudget(stage1_epochs=args.stage1_epochs, stage2_epochs=args.stage2_epochs)
    timings: dict[str, float] = {}
    details: dict[str, Any] = {}
    begin = time.perf_counter()
    classifier, stage1 = build_method(args, tax, train_labels)
    if classifier is None:
        details["stage1_losses"] = train_contrastive(stage1["model"], stage1["loss"], train_pixels, stage1["labels"], args)
        timings["stage1"] = round(time.perf_counter() - begin, 1)
        loss = stage1["loss"]
        record = {"loss": type(loss).__name__, "loss_config": loss.config(), "citation": loss.citation}
        classifier = build_classifier(stage1["model"], labels=class_names(), stage1=record)
        epochs = budget.stage2_epochs
    else:
        epochs = budget.total
    details["classifier_losses"] = train_cross_entropy(classifier, train_pixels, train_labels, epochs, args)
    timings["train"] = round(time.perf_counter() - begin, 1)

    begin = time.perf_counter()
    test_logits, test_features = logits_and_features(classifier, test_pixels)
    _, train_features = logits_and_features(classifier, train_pixels)
    predicted = test_logits.argmax(axis=1)
    truth_levels, predicted_levels = tax.level_ids(test_labels), tax.level_ids(predicted)
    metrics = {f"{level}_accuracy": float((predicted_levels[level] == truth_levels[level]).mean()) for level in LEVELS}
    knn = knn_level_accuracy(
        test_features,
        truth_levels,
        k=10,
        reference_embeddings=train_features,
        reference_labels_per_level=tax.level_ids(train_labels),
    )
    metrics.update({f"knn_{name}": value for name, value in knn.items()})
    timings["score"] = round(time.perf_counter() - begin, 1)
    result = {
        "benchmark": "fashion_mnist",
        "method": args.method,
        "learning_rate": args.lr,
        "temperature": None if args.method == "ce" else args.temperature,
        "seed": args.seed,
        "quick": args.quick,
        "sizes": {"train": len(train_labels), "test": len(test_labels)},
        "model": {"hidden_size": args.hidden_size, "layers": args.layers, "patch_size": 7},
        "batch_size": args.batch_size,
        "budget": budget.describe(),
        "timings_s": timings,
        "details": details,
        "metrics": metrics,
        "environment": environment(),
    }
    write_json(run_name(args), result, args.results_dir)
    return result


COLUMNS = ["method", "lr", "class_accuracy", "l2_accuracy", "l1_accuracy", "knn_class_accuracy", "knn_l2_accuracy",
           "knn_l1_accuracy", "train_s"]


def table_row(result: dict[str, Any]) -> dict[str, Any]:
    return {"method": result["method"], "lr": f"{result['learning_rate']:g}", **result["metrics"],
            "train_s": round(result["timings_s"]["train"])}


def report(results_dir: Path, quick: bool = False) -> str:
    results = [r for r in read_results("fashion_mnist_", results_dir) if r.get("quick", False) == quick]
    rows = sorted((table_row(r) for r in results), key=lambda row: (METHODS.index(row["method"]), row["lr"]))
    table = markdown_table(rows, COLUMNS)
    (results_dir / ("fashion_mnist_quick.md" if quick else "fashion_mnist.md")).write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        print(report(args.results_dir, quick=args.quick))
        return
    print(markdown_table([table_row(run_method(args))], COLUMNS))


if __name__ == "__main__":
    main()
