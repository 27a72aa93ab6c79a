"""Text or image: one decision for data settings, models (wrapped or not) and model configs."""

from __future__ import annotations

from peft import LoraConfig, get_peft_model
from tiny_models import save_tiny_vit, tiny_bert_config
from transformers import AutoConfig, AutoModel, BertModel

from hiercon.modality import IMAGE, TEXT, input_modality
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
