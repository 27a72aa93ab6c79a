"""LoRA in stage 2: adapters train, the saved artifact is a merged plain model that pipeline loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from tiny_models import quick_args, save_tiny_vit
from transformers import AutoModel, AutoTokenizer, BertForSequenceClassification, pipeline

from hiercon import ClassifierTrainer, ContrastiveModel, LabelTaxonomy, build_classifier
from hiercon.errors import ConfigError
from hiercon.modeling.adapters import apply_lora, merge_lora
from hiercon.modeling.classifier import read_hiercon_config

EDGES = [("root", "positive"), ("root", "negative"), ("positive", "joy"), ("negative", "anger")]
TEXTS = [
    ("happy glad joy", ["joy"]),
    ("angry mad hate", ["anger"]),
    ("joy fun win", ["joy"]),
    ("rage ugh", ["anger"]),
]


@pytest.fixture(scope="module")
def taxonomy():
    return LabelTaxonomy.from_edges(EDGES)


@pytest.fixture(scope="module")
def tokenizer(bert_dir):
    return AutoTokenizer.from_pretrained(bert_dir)


@pytest.fixture(scope="module")
def data(tokenizer):
    return Dataset.from_dict({**tokenizer([t for t, _ in TEXTS]), "labels": [n for _, n in TEXTS]})


def _args(folder, **overrides):
    return quick_args(
        folder, **{"per_device_train_batch_size": 4, "learning_rate": 5e-2, "max_steps": 2, **overrides}
    )


def _sigmoid_scores(model, tokenizer, texts):
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(**tokenizer(texts, return_tensors="pt", padding=True)).logits).numpy()


def _pipeline_scores(folder, texts, labels):
    rows = pipeline("text-classification", model=str(folder))(texts, top_k=None)
    return np.array([[{e["label"]: e["score"] for e in row}[label] for label in labels] for row in rows])


@pytest.mark.parametrize("bf16", [False, True])
def test_lora_stage2_saves_a_merged_plain_model(bert_dir, taxonomy, tokenizer, data, tmp_path, bf16):
    classifier = build_classifier(AutoModel.from_pretrained(bert_dir), taxonomy)
    base_before = {k: v.clone() for k, v in classifier.bert.state_dict().items()}
    head_before = classifier.classifier.weight.detach().clone()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    trainer = ClassifierTrainer(
        classifier,
        _args(tmp_path, bf16=bf16),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora,
    )
    assert isinstance(trainer.model, PeftModel)
    trainer.train()
    trainer.tune_thresholds_on(data)

    inner = trainer.model.get_base_model()
    for name, value in inner.bert.state_dict().items():
        if "lora_" not in name:
            torch.testing.assert_close(value, base_before[name.replace(".base_layer.", ".")])
    assert not torch.equal(trainer.model.classifier.modules_to_save["default"].weight, head_before)

    trainer.save_model(str(tmp_path / "model"))
    assert not (tmp_path / "model" / "adapter_config.json").exists()
    texts = ["happy joy", "angry hate"]
    expected = _sigmoid_scores(merge_lora(trainer.model), tokenizer, texts)
    np.testing.assert_allclose(
        _pipeline_scores(tmp_path / "model", texts, taxonomy.labels), expected, atol=1e-6
    )
    # After bf16 training, accelerate leaves the wrapped model's forward under bf16 autocast.
    unmerged = _sigmoid_scores(trainer.model, tokenizer, texts)
    np.testing.assert_allclose(unmerged, expected, atol=1e-3 if bf16 else 1e-5)
    saved = BertForSequenceClassification.from_pretrained(tmp_path / "model")
    assert not any("lora" in name for name in saved.state_dict())
    assert read_hiercon_config(saved.config)["stage2"]["peft"]["r"] == 4
    thresholds = read_hiercon_config(saved.config)["thresholds"]
    assert thresholds == read_hiercon_config(inner.config)["thresholds"]


def test_stage1_adapter_kept_trains_on_in_stage2(bert_dir, taxonomy, tokenizer, data, tmp_path):
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    stage1 = ContrastiveModel.from_encoder(str(bert_dir), pooling="cls", projection_dim=8, peft_config=lora)
    classifier = build_classifier(stage1, taxonomy, merge_adapter=False)
    assert read_hiercon_config(classifier.config)["stage1"]["peft"]["adapter"] == "kept"
    lora_before = {n: p.detach().clone() for n, p in classifier.named_parameters() if "lora_A" in n}
    trainer = ClassifierTrainer(classifier, _args(tmp_path), train_dataset=data, processing_class=tokenizer)
    trainer.train()
    assert any(
        not torch.equal(p, lora_before[n]) for n, p in classifier.named_parameters() if n in lora_before
    )
    trainer.save_model(str(tmp_path / "model"))
    texts = ["happy", "mad"]
    np.testing.assert_allclose(
        _pipeline_scores(tmp_path / "model", texts, taxonomy.labels),
        _sigmoid_scores(classifier, tokenizer, texts),
        atol=1e-5,
    )


def test_apply_lora_on_an_image_classifier(tmp_path):
    classifier = build_classifier(
        AutoModel.from_pretrained(save_tiny_vit(tmp_path / "vit", num_channels=3)), labels=["a", "b"]
    )
    wrapped = apply_lora(classifier, r=2)
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in trainable)
    assert any("classifier" in name and "lora" not in name for name in trainable)
    assert not any(name.endswith("query.weight") or "base_layer" in name for name in trainable)
    with torch.no_grad():
        for name, parameter in wrapped.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    pixels = torch.randn(2, 3, 28, 28)
    merged = merge_lora(wrapped)
    assert not isinstance(merged, PeftModel) and isinstance(wrapped, PeftModel)
    wrapped.eval()
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(pixel_values=pixels).logits, wrapped(pixel_values=pixels).logits)
    with pytest.raises(ConfigError, match="already carries"):
        apply_lora(wrapped)
    with pytest.raises(ConfigError, match="not both"):
        apply_lora(classifier, LoraConfig(r=2), r=4)


def test_the_recipe_lora_settings_build_an_adapter_that_merges_back(bert_dir, tokenizer):
    from hiercon.modeling import adapters
    from hiercon.recipe.arguments import ModelArguments
    from hiercon.recipe.stages import recipe_lora

    assert recipe_lora(ModelArguments()) is None
    settings = ModelArguments(
        lora=True, lora_r=2, lora_alpha=4, lora_dropout=0.0, lora_target_modules=["query", "value"]
    )
    config = recipe_lora(settings)
    assert (config.r, config.lora_alpha, config.lora_dropout) == (2, 4, 0.0)
    assert set(config.target_modules) == {"query", "value"}

    classifier = build_classifier(AutoModel.from_pretrained(bert_dir), labels=["a", "b"])
    assert adapters.merge_lora(classifier) is classifier and not adapters.is_peft(classifier)
    wrapped = apply_lora(classifier, config)
    assert adapters.is_peft(wrapped) and adapters.base_model_of(wrapped) is classifier
    with torch.no_grad():
        for name, parameter in wrapped.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    merged = adapters.merge_lora(wrapped)
    assert not adapters.is_peft(merged) and adapters.is_peft(wrapped)
    texts = [text for text, _ in TEXTS]
    np.testing.assert_allclose(
        _sigmoid_scores(merged, tokenizer, texts), _sigmoid_scores(wrapped, tokenizer, texts), atol=1e-5
    )
    assert not any("lora" in name for name in merged.state_dict())


def test_stage1_lora_without_targets_wraps_every_linear_layer_of_an_unmapped_encoder(tmp_path):
    vit_dir = save_tiny_vit(tmp_path / "vit", num_channels=3)
    model = ContrastiveModel.from_encoder(vit_dir, projection_dim=8, peft_config=LoraConfig(r=2))
    assert model.is_peft and model.stage1_info()["peft"]["r"] == 2
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("head.") for name in trainable)
    wrapped = {name.split(".lora_A")[0] for name in trainable if ".lora_A" in name}
    linear = {
        name
        for name, module in AutoModel.from_pretrained(vit_dir).named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    assert {name.rsplit("model.", 1)[-1] for name in wrapped} == linear
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    model.eval()
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        expected = model(pixel_values=pixels).embeddings
    model.save_pretrained(tmp_path / "saved")

    fresh = ContrastiveModel.from_encoder(vit_dir, projection_dim=8, peft_config=LoraConfig(r=2)).eval()
    fresh.load_weights(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(fresh(pixel_values=pixels).embeddings, expected)
    (tmp_path / "saved" / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(ConfigError, match="holds no LoRA adapter"):
        fresh.load_weights(tmp_path / "saved")
    with pytest.raises(ConfigError, match="already carries a peft adapter"):
        ContrastiveModel.from_encoder(fresh.encoder, peft_config=LoraConfig(r=2))
