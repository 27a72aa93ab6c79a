"""HierconRecord: what hiercon stores in config.json, read and written in one place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_classifiers import emotion_taxonomy
from transformers import AutoConfig, BertConfig

from hiercon.errors import ConfigError
from hiercon.record import (
    HierconRecord,
    read_hiercon_config,
    read_labels,
    read_taxonomy,
    set_stage2,
    set_thresholds,
)

NODES = ["positive", "negative", "joy", "love", "anger", "sadness"]
LEAVES = ["joy", "love", "anger", "sadness"]
# A config.json "hiercon" entry exactly as hiercon 0.1 wrote it.
SAVED_BY_0_1 = {
    "taxonomy": {
        "hiercon_taxonomy": 1,
        "labels": NODES,
        "edges": [["positive", "joy"], ["positive", "love"], ["negative", "anger"], ["negative", "sadness"]],
    },
    "label_space": "nodes",
    "thresholds": [0.5, 0.4, 0.3, 0.2, 0.6, 0.7],
    "stage1": {
        "loss": "SupConLoss",
        "loss_config": {"temperature": 0.1},
        "citation": "@inproceedings{khosla2020}",
        "pooling": "mean",
        "head_pooling": "pooler",
        "pooling_mismatch": True,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "peft": None,
    },
    "stage2": {
        "loss": "bce",
        "loss_config": {},
        "consistency_weight": 0.0,
        "freeze_encoder": False,
        "peft": None,
    },
}


def config_for(labels: list[str], **extra) -> BertConfig:
    return BertConfig(
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}, **extra
    )


def test_a_saved_0_1_config_reads_and_writes_back_unchanged(tmp_path: Path) -> None:
    config = config_for(NODES, hiercon=SAVED_BY_0_1)
    config.save_pretrained(tmp_path)
    record = HierconRecord.from_config(AutoConfig.from_pretrained(tmp_path))
    assert record.labels == tuple(NODES)
    assert record.taxonomy == emotion_taxonomy()
    assert record.label_space == "nodes" and record.is_hierarchical
    assert record.thresholds == (0.5, 0.4, 0.3, 0.2, 0.6, 0.7)
    assert record.stage1["loss"] == "SupConLoss" and record.stage2["loss"] == "bce"
    assert record.to_dict() == SAVED_BY_0_1
    assert HierconRecord.from_folder(tmp_path) == record  # config.json read as plain JSON
    assert HierconRecord.from_config(json.loads((tmp_path / "config.json").read_text())) == record


def test_record_round_trips_through_to_config_and_save_pretrained(tmp_path: Path) -> None:
    record = HierconRecord(
        tuple(LEAVES), emotion_taxonomy(), "leaves", thresholds=[0.1, 0.2, 0.3, 0.4], stage1={"loss": "X"}
    )
    config = config_for(LEAVES)
    record.to_config(config)
    assert config.hiercon == record.to_dict() and "stage2" not in config.hiercon
    config.save_pretrained(tmp_path)
    reread = HierconRecord.from_config(AutoConfig.from_pretrained(tmp_path))
    assert reread == record
    assert HierconRecord.from_dict(record.to_dict(), LEAVES) == record
    assert reread.space().names == LEAVES and reread.space().columns == "leaves"


def test_a_plain_model_reads_as_flat_labels_with_default_thresholds() -> None:
    config = config_for(["cat", "dog", "bird"])
    assert not HierconRecord.is_stored_in(config)
    record = HierconRecord.from_config(config)
    assert record == HierconRecord(("cat", "dog", "bird"))
    assert record.taxonomy is None and record.label_space == "leaves" and record.stage2 is None
    assert record.thresholds == (0.5, 0.5, 0.5) and record.stage1 == {}
    assert record.space().names == ["cat", "dog", "bird"]
    assert not record.is_hierarchical


def test_records_that_do_not_fit_their_labels_are_refused() -> None:
    taxonomy = emotion_taxonomy()
    with pytest.raises(ConfigError, match="label_space must be one of"):
        HierconRecord(tuple(NODES), taxonomy, "levels")
    with pytest.raises(ConfigError, match="got 2 thresholds for 6 labels"):
        HierconRecord(tuple(NODES), taxonomy, "nodes", thresholds=[0.5, 0.5])
    with pytest.raises(ConfigError, match=r"lie in \[0, 1\]"):
        HierconRecord(("a",), thresholds=[1.5])
    with pytest.raises(ConfigError, match="not the taxonomy's 4 leaves"):
        HierconRecord(tuple(NODES), taxonomy, "leaves")
    with pytest.raises(ConfigError, match="malformed"):
        HierconRecord.from_config(config_for(["a"], hiercon={"thresholds": [0.5]}))
    with pytest.raises(ConfigError, match=r"config has labels \['a', 'b'\]"):
        HierconRecord(("a",)).to_config(config_for(["a", "b"]))
    with pytest.raises(ConfigError, match="no config.json"):
        HierconRecord.from_folder(Path("/nonexistent-model-folder"))


def test_the_record_is_immutable_and_replace_checks_again() -> None:
    record = HierconRecord(("a", "b"))
    with pytest.raises(AttributeError):
        record.thresholds = (0.1, 0.1)  # type: ignore[misc]
    changed = record.replace(thresholds=[0.1, 0.9])
    assert changed.thresholds == (0.1, 0.9) and record.thresholds == (0.5, 0.5)
    with pytest.raises(ConfigError, match="3 thresholds for 2 labels"):
        record.replace(thresholds=[0.1, 0.2, 0.3])


def test_short_forms_read_and_write_through_the_record() -> None:
    config = config_for(NODES, hiercon=SAVED_BY_0_1)
    assert read_hiercon_config(config) == SAVED_BY_0_1
    assert read_labels(config) == NODES and read_taxonomy(config) == emotion_taxonomy()
    assert set_thresholds(config, [0.9] * 6) == [0.9] * 6
    assert config.hiercon["thresholds"] == [0.9] * 6
    set_stage2(config, {"loss": "asl"})
    assert config.hiercon["stage2"] == {"loss": "asl"} and config.hiercon["stage1"] == SAVED_BY_0_1["stage1"]
    with pytest.raises(ConfigError, match="thresholds"):
        set_thresholds(config, [0.5])
    assert config.hiercon["thresholds"] == [0.9] * 6  # a refused change leaves the config as it was
