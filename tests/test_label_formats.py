"""Every label format reaches the hierarchical loss the same way through the loss alone, the
``ContrastiveTrainer`` and ``hiercon train``: all three accept it (with the same loss value where the
batch is the same), or all three refuse it with the label space's message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from tiny_models import WORDS, save_tiny_bert
from transformers import AutoTokenizer, TrainingArguments

from hiercon import ContrastiveModel, ContrastiveTrainer, LabelSpace, LabelTaxonomy
from hiercon.cli import main as cli_main
from hiercon.errors import HierconError
from hiercon.losses import HiMulConELoss

EDGES = [("pos", "joy"), ("pos", "love"), ("neg", "anger"), ("neg", "fear")]
LEAF_WORDS = {"joy": WORDS[0:8], "love": WORDS[8:16], "anger": WORDS[16:24], "fear": WORDS[24:32]}
LEAF_SETS = [["joy"], ["love"], ["anger"], ["fear"], ["joy", "love"], ["anger"], ["fear"], ["joy"]] * 2
FORMATS = ["names", "ids", "paths", "multi_hot_leaves", "multi_hot_nodes"]
WRONG_WIDTH = "must be multi-hot over the 6 taxonomy nodes or its 4 leaves"


@pytest.fixture(scope="module")
def taxonomy() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(EDGES)


def label_values(taxonomy: LabelTaxonomy, label_format: str) -> list:
    """``LEAF_SETS`` written in one format (ids: one node id per example, so single labels only)."""
    parent = {child: parent for parent, child in EDGES}
    if label_format == "names":
        return [list(names) for names in LEAF_SETS]
    if label_format == "ids":
        return [taxonomy.index(names[0]) for names in LEAF_SETS]
    if label_format == "paths":
        return [[f"{parent[name]}/{name}" for name in names] for names in LEAF_SETS]
    columns = "leaves" if label_format == "multi_hot_leaves" else "nodes"
    return LabelSpace(taxonomy, columns).encode(LEAF_SETS).tolist()


def expected_nodes(taxonomy: LabelTaxonomy, label_format: str) -> torch.Tensor:
    sets = [names[:1] for names in LEAF_SETS] if label_format == "ids" else LEAF_SETS
    return LabelSpace(taxonomy, "nodes").encode(sets)


def texts() -> list[str]:
    return [" ".join(LEAF_WORDS[name][(i + k) % 8] for name in names for k in range(3)) for i, names in enumerate(LEAF_SETS)]


def as_loss_input(values: list) -> object:
    """What a user hands the loss directly: numbers as tensors, label sets as lists."""
    if isinstance(values[0], list) and isinstance(values[0][0], str):
        return values
    return torch.tensor(values)


@pytest.mark.parametrize("label_format", FORMATS)
def test_loss_alone_reads_every_format(taxonomy, label_format) -> None:
    loss = HiMulConELoss(taxonomy)
    embeddings = torch.randn(len(LEAF_SETS), 2, 8, dtype=torch.float64)
    value = loss(embeddings, as_loss_input(label_values(taxonomy, label_format)))
    reference = loss(embeddings, expected_nodes(taxonomy, label_format))
    assert torch.isfinite(value) and torch.allclose(value, reference)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def trainer_for(tiny_bert: Path, taxonomy: LabelTaxonomy, labels: list, output: Path) -> ContrastiveTrainer:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    dataset = Dataset.from_dict({**tokenizer(texts(), truncation=True, max_length=16), "labels": labels})
    torch.manual_seed(0)
    model = ContrastiveModel.from_encoder(str(tiny_bert), pooling="mean", projection_dim=8)
    args = TrainingArguments(
        output_dir=str(output), max_steps=1, per_device_train_batch_size=8, report_to="none", seed=0
    )
    return ContrastiveTrainer(
        model=model, args=args, train_dataset=dataset, loss=HiMulConELoss(taxonomy), views=1, processing_class=tokenizer
    )


@pytest.mark.parametrize("label_format", FORMATS)
def test_contrastive_trainer_reads_every_format(tiny_bert, taxonomy, label_format, tmp_path) -> None:
    trainer = trainer_for(tiny_bert, taxonomy, label_values(taxonomy, label_format), tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    trainer.model.eval()
    value = trainer.compute_loss(trainer.model, batch)
    reference_batch = {**batch, "labels": expected_nodes(taxonomy, label_format)[:8]}
    assert torch.allclose(value, trainer.compute_loss(trainer.model, reference_batch))
    trainer.model.train()
    assert trainer.train().training_loss > 0


def write_recipe(root: Path, tiny_bert: Path, label_format: str, labels: list, taxonomy: LabelTaxonomy) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        with open(data / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for text, value in zip(texts(), labels):
                handle.write(json.dumps({"text": text, "labels": value}) + "\n")
    (data / "taxonomy.tsv").write_text("".join(f"{p}\t{c}\n" for p, c in EDGES), encoding="utf-8")
    recipe_format = "multi_hot" if label_format.startswith("multi_hot") else label_format
    config = {
        "model": {"model_name_or_path": str(tiny_bert), "pooling": "mean", "projection_dim": 8, "max_length": 16},
        "data": {"dataset": str(data), "taxonomy": str(data / "taxonomy.tsv"), "label_format": recipe_format},
        "stage1": {"loss": "himulcone", "max_steps": 1, "per_device_train_batch_size": 8, "num_views": 1},
        "stage2": {"max_steps": 1, "per_device_train_batch_size": 8},
        "output": {"output_dir": str(root / "model"), "plots": False},
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("label_format", FORMATS)
def test_hiercon_train_reads_every_format(tiny_bert, taxonomy, label_format, tmp_path) -> None:
    config = write_recipe(tmp_path, tiny_bert, label_format, label_values(taxonomy, label_format), taxonomy)
    assert cli_main(["train", str(config)]) == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics and all(value == value for value in metrics.values() if isinstance(value, float))


def test_every_path_refuses_a_wrong_width_with_the_same_message(tiny_bert, taxonomy, tmp_path, capsys) -> None:
    wrong = [[1.0, 0.0, 0.0, 0.0, 0.0]] * len(LEAF_SETS)
    with pytest.raises(HierconError, match=WRONG_WIDTH):
        HiMulConELoss(taxonomy)(torch.randn(len(LEAF_SETS), 2, 8), torch.tensor(wrong))
    with pytest.raises(HierconError, match=WRONG_WIDTH):
        trainer_for(tiny_bert, taxonomy, wrong, tmp_path / "trainer").train()
    config = write_recipe(tmp_path / "recipe", tiny_bert, "multi_hot_nodes", wrong, taxonomy)
    assert cli_main(["train", str(config)]) == 2
    assert re.search(WRONG_WIDTH, capsys.readouterr().err)


def test_every_path_refuses_an_unknown_name_with_the_same_message(tiny_bert, taxonomy, tmp_path, capsys) -> None:
    unknown = [["joi"]] + [list(names) for names in LEAF_SETS[1:]]
    message = r"unknown label 'joi' in row 0 of .*\(did you mean 'joy'\?\)"
    with pytest.raises(HierconError, match=message):
        HiMulConELoss(taxonomy)(torch.randn(len(LEAF_SETS), 2, 8), unknown)
    with pytest.raises(HierconError, match=message):
        trainer_for(tiny_bert, taxonomy, unknown, tmp_path / "trainer").train()
    config = write_recipe(tmp_path / "recipe", tiny_bert, "names", unknown, taxonomy)
    assert cli_main(["train", str(config)]) == 2
    assert re.search(message, capsys.readouterr().err)
