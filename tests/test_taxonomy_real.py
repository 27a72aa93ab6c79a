"""The real taxonomies: GoEmotions (shipped copy and shared data) and Fashion-MNIST (shared data)."""

from __future__ import annotations

import gzip
import json
from itertools import islice

import pytest

from hiercon import LabelTaxonomy


def check_goemotions(taxonomy: LabelTaxonomy) -> None:
    assert taxonomy.num_labels == 39 and taxonomy.num_levels == 3
    assert len(taxonomy.leaves) == 28 and len(taxonomy.roots) == 4
    assert [len(taxonomy.level_labels(level)) for level in range(3)] == [4, 7, 28]
    assert taxonomy.roots == ["sentiment:positive", "sentiment:negative", "sentiment:ambiguous", "sentiment:neutral"]
    assert taxonomy.paths_to_root("emotion:grief") == [["sentiment:negative", "ekman:sadness", "emotion:grief"]]
    assert taxonomy.children("ekman:joy")[:3] == ["emotion:admiration", "emotion:amusement", "emotion:approval"]
    assert taxonomy.lowest_common_ancestor("emotion:grief", "emotion:fear") == "sentiment:negative"
    assert taxonomy.tree_distance("emotion:grief", "emotion:remorse") == 2
    assert taxonomy.leaf_paths.shape == (28, 3)
    assert taxonomy.similarity_matrix[taxonomy.index("emotion:grief"), taxonomy.index("emotion:remorse")] == (
        pytest.approx(2 / 3)
    )


def test_shipped_goemotions_taxonomy(shipped_data):
    check_goemotions(LabelTaxonomy.from_file(shipped_data / "goemotions" / "taxonomy_edges.tsv"))


def test_shipped_goemotions_label_sets_match_the_coarse_columns(shipped_data):
    taxonomy = LabelTaxonomy.from_file(shipped_data / "goemotions" / "taxonomy_edges.tsv")
    with gzip.open(shipped_data / "goemotions" / "dev_hier.jsonl.gz", "rt", encoding="utf-8") as rows:
        examples = [json.loads(line) for line in islice(rows, 300)]
    label_sets = [[f"emotion:{name}" for name in row["emotions"]] for row in examples]
    assert taxonomy.is_consistent(taxonomy.encode(label_sets)).all()
    for level, field in ((0, "sentiment"), (1, "ekman")):
        names = [name.split(":", 1)[1] for name in taxonomy.level_labels(level)]
        decoded = [
            sorted(name for name, on in zip(names, row.tolist()) if on)
            for row in taxonomy.encode_level(label_sets, level)
        ]
        assert decoded == [sorted(row[field]) for row in examples]


@pytest.mark.shared_data
def test_shared_goemotions_edges_and_json_agree(shared_data):
    folder = shared_data / "goemotions"
    edges = LabelTaxonomy.from_file(folder / "taxonomy_edges.tsv")
    check_goemotions(edges)
    nested = LabelTaxonomy.from_file(folder / "taxonomy.json")  # {"tree": ..., "levels": [...]} wrapper
    assert nested.same_structure(edges)
    emotions = (folder / "emotions.txt").read_text(encoding="utf-8").split()
    assert sorted(edges.leaves) == sorted(f"emotion:{name}" for name in emotions)


@pytest.mark.shared_data
def test_shared_fashion_mnist_taxonomy(shared_data):
    folder = shared_data / "fashion_mnist"
    taxonomy = LabelTaxonomy.from_file(folder / "taxonomy_edges.tsv")
    assert taxonomy.num_labels == 18 and taxonomy.num_levels == 3
    assert len(taxonomy.leaves) == 10 and taxonomy.roots == ["l1:clothes", "l1:goods"]
    assert len(taxonomy.level_labels(1)) == 6
    assert sum(len(taxonomy.children(node)) == 1 for node in taxonomy.level_labels(1)) == 4
    assert taxonomy.paths_to_root("class:0") == [["l1:clothes", "l2:tops", "class:0"]]
    assert taxonomy.children("l2:shoes") == ["class:5", "class:7", "class:9"]
    assert LabelTaxonomy.from_file(folder / "taxonomy.json").same_structure(taxonomy)
    single_label = taxonomy.encode([f"class:{label}" for label in range(10)])
    assert single_label.sum(dim=1).tolist() == [3.0] * 10
