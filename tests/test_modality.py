"""Text or image: one decision for data settings, models (wrapped or not) and model configs, which
the contrastive model, its views, the classifier builder and loader, and the card all take."""

from __future__ import annotations

import json

from peft import LoraConfig, get_peft_model
from tiny_models import save_tiny_vit, tiny_bert_config
from transformers import AutoConfig, AutoModel, BertModel

from hiercon import ContrastiveModel, build_classifier
from hiercon.hub.card_data import HierconCardData
from hiercon.modality import IMAGE, TEXT, classification_task, input_modality
from hiercon.modeling.classifier import load_classifier
from hiercon.modeling.views import AugmentedViews, DropoutViews, make_views
from hiercon.recipe.arguments import DataArguments


def test_data_settings_are_image_when_they_name_an_image_column():
    assert input_modality(DataArguments(dataset="d")) == TEXT
    assert input_modality(DataArguments(dataset="d", text_column=None, image_column="image")) == IMAGE


def test_models_and_their_configs_agree(tmp_path):
    vit_dir = save_tiny_vit(tmp_path / "vit", num_channels=3)
    vit = AutoModel.from_pretrained(vit_dir)
    bert = BertModel(tiny_bert_config(50))
    assert input_modality(vit) == input_modality(vit.config) == IMAGE
    assert input_modality(bert) == input_modality(bert.config) == TEXT
    wrapped = get_peft_model(vit, LoraConfig(r=2, target_modules=["q_proj"]))
    assert input_modality(wrapped) == IMAGE


def test_a_saved_classifier_config_is_read_by_its_architecture(tmp_path):
    config = AutoConfig.for_model("bert", architectures=["BertForSequenceClassification"])
    assert input_modality(config) == TEXT
    config = AutoConfig.for_model("vit", architectures=["ViTForImageClassification"])
    assert input_modality(config) == IMAGE


def test_every_reader_takes_the_one_answer(tmp_path):
    vit_dir = save_tiny_vit(tmp_path / "vit", num_channels=3)
    bert = BertModel(tiny_bert_config(50))
    vision_model = ContrastiveModel.from_encoder(vit_dir, projection_dim=4)
    text_model = ContrastiveModel.from_encoder(bert, projection_dim=4)
    assert (vision_model.modality, text_model.modality) == (IMAGE, TEXT)
    assert (vision_model.main_input_name, text_model.main_input_name) == ("pixel_values", "input_ids")
    assert isinstance(make_views(2, vision_model.modality), AugmentedViews)
    assert isinstance(make_views(2, text_model.modality), DropoutViews)

    image_classifier = build_classifier(vision_model, labels=["a", "b"])
    text_classifier = build_classifier(text_model, labels=["a", "b"])
    assert type(image_classifier).__name__ == "ViTForImageClassification"
    assert type(text_classifier).__name__ == "BertForSequenceClassification"
    image_classifier.save_pretrained(tmp_path / "image")
    assert type(load_classifier(tmp_path / "image")).__name__ == "ViTForImageClassification"

    saved = json.loads((tmp_path / "image" / "config.json").read_text())
    assert (
        classification_task(saved) == classification_task(image_classifier.config) == "image-classification"
    )
    assert classification_task(text_classifier.config) == "text-classification"
    card = HierconCardData.from_config(saved)
    assert card.pipeline_tag == "image-classification"
