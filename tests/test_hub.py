"""Publishing through a loopback Hub with the real hub client, and loading back with ``pipeline``."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import hub_server
import pytest
import torch
from hub_server import FAKE_TOKEN, FakeHub
from tiny_models import tiny_bert_config, write_tiny_tokenizer
from transformers import BertForSequenceClassification, pipeline

from hiercon import MultiLabelPredictor
from hiercon.hub import HierconCardData, PushError, push_model_folder, save_model_card

fake_hub = hub_server.fake_hub

LABELS = ["joy", "anger", "curiosity"]


def save_tiny_classifier(folder: Path) -> Path:
    """A tiny multi-label BERT classifier with its tokenizer and a README, saved like the recipe does."""
    tokenizer = write_tiny_tokenizer(folder)
    config = tiny_bert_config(
        len(tokenizer),
        num_labels=len(LABELS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    config.hiercon = {
        "taxonomy": None,
        "label_space": "leaves",
        "thresholds": [0.4, 0.5, 0.6],
        "stage1": {
            "loss": "SupConLoss",
            "loss_config": {"temperature": 0.1},
            "pooling": "mean",
            "base_model": "tiny-bert",
        },
    }
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    save_model_card(HierconCardData.from_config(config, model_id="tester/tiny-ml"), folder)
    return folder


def test_push_then_pipeline_from_the_hub(tmp_path: Path, fake_hub: FakeHub, caplog) -> None:
    folder = save_tiny_classifier(tmp_path / "model")
    with caplog.at_level(logging.DEBUG):
        result = push_model_folder(folder, "tester/tiny-ml")
    assert result.commit_url.startswith(fake_hub.endpoint)
    stored = fake_hub.storage.files("tester/tiny-ml")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(stored)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in stored)

    classifier = pipeline("text-classification", model="tester/tiny-ml")
    scores = classifier("happy joy great", top_k=None)
    assert sorted(entry["label"] for entry in scores) == sorted(LABELS)
    assert all(0.0 < entry["score"] < 1.0 for entry in scores)  # sigmoid, not softmax
    assert abs(sum(entry["score"] for entry in scores) - 1.0) > 1e-3  # independent per label
    predictor = MultiLabelPredictor.from_pretrained("tester/tiny-ml")
    assert predictor.thresholds.tolist() == [0.4, 0.5, 0.6]
    assert FAKE_TOKEN not in caplog.text
    card = (fake_hub.storage.folder("tester/tiny-ml") / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and FAKE_TOKEN not in card


def test_stage1_encoder_goes_to_a_second_repo(tmp_path: Path, fake_hub: FakeHub) -> None:
    from tiny_models import save_tiny_bert

    folder = save_tiny_classifier(tmp_path / "model")
    encoder = save_tiny_bert(tmp_path / "encoder")
    result = push_model_folder(folder, "tester/tiny-ml", include_stage1=encoder, private=True)
    assert result.stage1_repo_url is not None and "tester/tiny-ml-encoder" in result.stage1_repo_url
    assert {"model.safetensors", "README.md"} <= set(fake_hub.storage.files("tester/tiny-ml-encoder"))
    card = (fake_hub.storage.folder("tester/tiny-ml-encoder") / "README.md").read_text()
    assert (
        "pipeline_tag: feature-extraction" in card
        and "`SupConLoss`" in card
        and "| loss.temperature | 0.1000 |" in card
    )
    assert not (encoder / "README.md").exists()  # the local folder is left as it was


def test_failed_push_keeps_the_folder_and_says_how_to_retry(
    tmp_path: Path, fake_hub: FakeHub, caplog
) -> None:
    folder = save_tiny_classifier(tmp_path / "model")
    fake_hub.stop()
    before = sorted(path.name for path in folder.iterdir())
    with caplog.at_level(logging.DEBUG), pytest.raises(PushError) as failure:
        push_model_folder(folder, "tester/tiny-ml", token=FAKE_TOKEN)
    message = str(failure.value)
    assert str(folder.resolve()) in message
    assert f"hiercon push {folder.resolve()} --repo-id tester/tiny-ml" in message
    assert failure.value.retry_command == f"hiercon push {folder.resolve()} --repo-id tester/tiny-ml"
    assert sorted(path.name for path in folder.iterdir()) == before
    assert FAKE_TOKEN not in message and FAKE_TOKEN not in caplog.text
    assert isinstance(failure.value, RuntimeError)


def test_push_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        push_model_folder(tmp_path, "tester/empty")


def test_retry_command_matches_the_cli(tmp_path: Path) -> None:
    from hiercon.cli import build_parser
    from hiercon.hub.push import retry_command

    command = retry_command(tmp_path / "my model", "me/x", True, tmp_path / "enc", "me/x-encoder")
    arguments = build_parser().parse_args(shlex.split(command)[1:])
    assert (arguments.model_dir, arguments.repo_id, arguments.private) == (
        str(tmp_path / "my model"),
        "me/x",
        True,
    )
    assert (arguments.stage1_dir, arguments.stage1_repo_id) == (str(tmp_path / "enc"), "me/x-encoder")
