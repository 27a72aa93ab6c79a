"""Data labels that differ from the taxonomy's node names by a level prefix: mapped when each matches
one node, refused with the ``data.label_template`` that would work otherwise."""

from __future__ import annotations

import json

import pytest
from recipe_toy import toy_config

from hiercon.cli import main
from hiercon.errors import UnknownLabelError
from hiercon.recipe.label_mapping import covering_templates, resolve_mapping, tails

PREFIXED_EDGES = [
    ("root", "group:positive"),
    ("root", "group:negative"),
    ("root", "group:ambiguous"),
    ("group:positive", "emotion:joy"),
    ("group:negative", "emotion:sadness"),
    ("group:negative", "emotion:anger"),
    ("group:ambiguous", "emotion:curiosity"),
]
NODES = [child for _, child in PREFIXED_EDGES]


def test_tails_drop_each_level_prefix() -> None:
    assert tails("a:b/joy") == ["b/joy", "joy"]
    assert tails("joy") == []


def test_unprefixed_labels_map_to_prefixed_nodes_with_their_template() -> None:
    mapping = resolve_mapping(["joy", "anger", "positive"], NODES)
    assert mapping is not None
    assert mapping.mapping == {"joy": "emotion:joy", "anger": "emotion:anger", "positive": "group:positive"}
    assert mapping.template is None
    same_level = resolve_mapping(["joy", "anger"], NODES)
    assert same_level is not None and same_level.template == "emotion:{}"
    assert same_level("joy") == "emotion:joy" and same_level("emotion:joy") == "emotion:joy"


def test_prefixed_labels_map_to_plain_nodes() -> None:
    mapping = resolve_mapping(["emotion:joy", "emotion:anger", "joy"], ["joy", "anger", "sadness"])
    assert mapping is not None and mapping.mapping == {"emotion:joy": "joy", "emotion:anger": "anger"}


def test_nothing_to_map_when_every_label_is_a_node_or_none_matches() -> None:
    assert resolve_mapping(["emotion:joy", "group:positive"], NODES) is None
    assert resolve_mapping(["hate"], NODES) is None


def test_a_label_matching_several_nodes_is_refused_with_the_template_that_works() -> None:
    nodes = ["ekman:joy", "ekman:anger", "emotion:joy", "emotion:anger", "emotion:grief"]
    with pytest.raises(UnknownLabelError) as error:
        resolve_mapping(["joy", "anger", "grief"], nodes)
    message = str(error.value)
    assert "2 data labels match several taxonomy nodes" in message
    assert "'anger' -> ekman:anger, emotion:anger; 'joy' -> ekman:joy, emotion:joy" in message
    assert message.endswith('set data.label_template: "emotion:{}" (it maps every label)')


def test_several_working_templates_are_listed() -> None:
    nodes = ["ekman:joy", "emotion:joy"]
    assert covering_templates(["joy"], nodes) == ["ekman:{}", "emotion:{}"]
    with pytest.raises(
        UnknownLabelError,
        match=r'set data.label_template to the one you mean: "ekman:\{\}" or "emotion:\{\}"',
    ):
        resolve_mapping(["joy"], nodes)


def test_ambiguous_labels_without_a_working_template_are_listed() -> None:
    nodes = ["ekman:joy", "emotion:joy", "ekman:fear"]
    with pytest.raises(
        UnknownLabelError, match=r"'joy' -> ekman:joy, emotion:joy\); set data.label_template, or name"
    ):
        resolve_mapping(["joy", "grief"], nodes)


@pytest.mark.slow
def test_unprefixed_labels_train_with_a_prefixed_taxonomy(tmp_path, capsys) -> None:
    config = toy_config(tmp_path, data={"taxonomy": "data/prefixed.tsv"})
    edges = "".join(f"{parent}\t{child}\n" for parent, child in PREFIXED_EDGES)
    (tmp_path / "data" / "prefixed.tsv").write_text(edges, encoding="utf-8")
    assert main(["train", str(config)]) == 0
    capsys.readouterr()
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert sorted(saved["id2label"].values()) == sorted(NODES)
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert 0.0 <= metrics["micro_f1"] <= 1.0
