"""build_classifier: stage-1 encoder -> plain multi-label AutoModelFor*Classification."""

from __future__ import annotations

import warnings

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tiny_classifiers import emotion_taxonomy
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BertForSequenceClassification,
    ViTForImageClassification,
)

from hiercon import build_classifier
from hiercon.errors import ConfigError
from hiercon.modeling import ContrastiveModel
from hiercon.modeling.classifier import load_classifier, read_labels, read_taxonomy, set_thresholds
from hiercon.record import HierconRecord


@pytest.fixture(scope="module")
def taxonomy():
    return emotion_taxonomy()


@pytest.fixture(scope="module")
def text_batch(bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    return dict(tokenizer(["happy glad joy", "angry mad hate ugh"], return_tensors="pt", padding=True))


def _hidden(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(**inputs).last_hidden_state


def test_text_classifier_copies_the_encoder(bert_dir, taxonomy, text_batch):
    encoder = AutoModel.from_pretrained(bert_dir)
    classifier = build_classifier(encoder, taxonomy)
    assert isinstance(classifier, BertForSequenceClassification)
    assert classifier.config.problem_type == "multi_label_classification"
    assert read_labels(classifier.config) == taxonomy.labels
    assert classifier.config.label2id == {label: i for i, label in enumerate(taxonomy.labels)}
    torch.testing.assert_close(_hidden(classifier.base_model, text_batch), _hidden(encoder, text_batch))
    assert classifier.classifier.out_features == taxonomy.num_labels


def test_image_classifier_copies_the_encoder(vit_dir):
    encoder = AutoModel.from_pretrained(vit_dir)
    classifier = build_classifier(encoder, labels=["shirt", "shoe", "bag"])
    assert isinstance(classifier, ViTForImageClassification)
    pixels = {"pixel_values": torch.randn(2, 1, 28, 28)}
    torch.testing.assert_close(_hidden(classifier.base_model, pixels), _hidden(encoder, pixels))
    record = HierconRecord.from_config(classifier.config)
    assert record.taxonomy is None and record.label_space == "leaves"
    assert record.labels == ("shirt", "shoe", "bag") and record.thresholds == (0.5, 0.5, 0.5)
    assert record.stage1["head_pooling"] == "cls"


def test_config_contract_round_trips_through_save(bert_dir, taxonomy, tmp_path):
    classifier = build_classifier(str(bert_dir), taxonomy, label_space="leaves", stage1={"loss": "supcon"})
    set_thresholds(classifier.config, [0.2, 0.3, 0.4, 0.6])
    classifier.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert set(config.hiercon) == {"taxonomy", "label_space", "thresholds", "stage1"}
    record = HierconRecord.from_config(config)
    assert record.label_space == "leaves"
    assert record.thresholds == (0.2, 0.3, 0.4, 0.6)
    assert record.stage1["loss"] == "supcon" and record.stage1["peft"] is None
    assert read_labels(config) == taxonomy.leaves
    assert read_taxonomy(config) == taxonomy
    reloaded = load_classifier(tmp_path)
    assert isinstance(reloaded, BertForSequenceClassification)
    torch.testing.assert_close(reloaded.classifier.weight, classifier.classifier.weight)


def test_contrastive_model_with_mean_pooling_warns_and_records(bert_dir, taxonomy, text_batch):
    stage1 = ContrastiveModel.from_encoder(str(bert_dir), pooling="mean", projection_dim=8)
    with pytest.warns(UserWarning, match="pool with 'auto'"):
        classifier = build_classifier(stage1, taxonomy)
    record = HierconRecord.from_config(classifier.config).stage1
    assert record["pooling"] == "mean" and record["head_pooling"] == "pooler" and record["pooling_mismatch"]
    torch.testing.assert_close(
        _hidden(classifier.base_model, text_batch), _hidden(stage1.encoder, text_batch)
    )


def test_contrastive_model_saved_folder_with_cls_pooling(bert_dir, taxonomy, tmp_path):
    stage1 = ContrastiveModel.from_encoder(str(bert_dir), pooling="cls", projection_dim=8)
    stage1.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        classifier = build_classifier(str(tmp_path), taxonomy)
    record = HierconRecord.from_config(classifier.config).stage1
    assert record["pooling"] == "cls" and not record["pooling_mismatch"]
    assert record["base_model"] == str(bert_dir)


@pytest.mark.parametrize("merge", [True, False])
def test_lora_encoder_is_merged_or_kept(bert_dir, taxonomy, text_batch, merge):
    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    encoder = get_peft_model(AutoModel.from_pretrained(bert_dir), lora)
    reference = _hidden(encoder, text_batch)
    classifier = build_classifier(encoder, taxonomy, merge_adapter=merge)
    record = HierconRecord.from_config(classifier.config).stage1["peft"]
    assert record["adapter"] == ("merged" if merge else "kept")
    assert record["r"] == 4
    if merge:
        assert not isinstance(classifier, PeftModel)
        torch.testing.assert_close(_hidden(classifier.base_model, text_batch), reference)
    else:
        assert isinstance(classifier, PeftModel)
        torch.testing.assert_close(_hidden(classifier.get_base_model().bert, text_batch), reference)
        trainable = {name for name, p in classifier.named_parameters() if p.requires_grad}
        assert any("lora_A" in name for name in trainable) and any("classifier" in name for name in trainable)
    assert isinstance(encoder, PeftModel) and any("lora_A" in n for n, _ in encoder.named_parameters())


def test_adapter_folder_is_loaded_and_merged(bert_dir, taxonomy, text_batch, tmp_path):
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    encoder = get_peft_model(AutoModel.from_pretrained(bert_dir), lora)
    encoder.save_pretrained(tmp_path)
    classifier = build_classifier(str(tmp_path), taxonomy)
    assert HierconRecord.from_config(classifier.config).stage1["peft"]["adapter"] == "merged"
    torch.testing.assert_close(_hidden(classifier.base_model, text_batch), _hidden(encoder, text_batch))


def test_bad_arguments_are_refused(bert_dir, taxonomy):
    encoder = AutoModel.from_pretrained(bert_dir)
    with pytest.raises(ConfigError, match="not both"):
        build_classifier(encoder, taxonomy, labels=["a"])
    with pytest.raises(ConfigError, match="label_space"):
        build_classifier(encoder, taxonomy, label_space="levels")
    with pytest.raises(ConfigError, match="unique"):
        build_classifier(encoder, labels=["a", "b", "a"])
    with pytest.raises(ConfigError, match="taxonomy or a non-empty"):
        build_classifier(encoder)
    with pytest.raises(ConfigError, match="multi-label"):
        build_classifier(encoder, taxonomy, problem_type="single_label_classification")
    with pytest.raises(ConfigError, match="ContrastiveModel"):
        build_classifier(42, taxonomy)
    with pytest.raises(ConfigError, match="thresholds"):
        HierconRecord(("a",), thresholds=[0.5, 0.5]).to_config(
            AutoConfig.for_model("bert", id2label={0: "a"})
        )


def test_encoder_without_pooler_gives_an_identity_pooler(bert_dir, taxonomy, text_batch):
    encoder = AutoModel.from_pretrained(bert_dir, add_pooling_layer=False)
    assert encoder.pooler is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        classifier = build_classifier(encoder, taxonomy)
    classifier.eval()
    with torch.no_grad():
        outputs = classifier.bert(**text_batch)
    torch.testing.assert_close(outputs.pooler_output, torch.tanh(outputs.last_hidden_state[:, 0]))


def _head_input(classifier, module, inputs):
    """What ``module`` of ``classifier`` receives on ``inputs`` (eval mode)."""
    seen = []
    handle = module.register_forward_hook(lambda _module, args, _output: seen.append(args[0]))
    classifier.eval()
    with torch.no_grad():
        classifier(**inputs)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("stage1_pooling", ["auto", "cls"])
def test_bert_head_reads_what_stage1_pooled(bert_dir, taxonomy, text_batch, stage1_pooling):
    stage1 = ContrastiveModel.from_encoder(str(bert_dir), pooling=stage1_pooling, projection_dim=8).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        classifier = build_classifier(stage1, taxonomy)
    with torch.no_grad():
        pooled = stage1.encode(**text_batch)
    head_input = _head_input(classifier, classifier.classifier, text_batch)
    expected = pooled if stage1.pooling == "pooler" else torch.tanh(pooled)
    torch.testing.assert_close(head_input, expected)


def test_distilbert_head_reads_what_stage1_pooled(taxonomy, text_batch):
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(
        vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    stage1 = ContrastiveModel.from_encoder(DistilBertModel(config), projection_dim=8).eval()
    assert stage1.pooling == "cls"
    inputs = {key: value for key, value in text_batch.items() if key != "token_type_ids"}
    classifier = build_classifier(stage1, taxonomy)
    with torch.no_grad():
        pooled = stage1.encode(**inputs)
    torch.testing.assert_close(_head_input(classifier, classifier.pre_classifier, inputs), pooled)


def test_stage1_adapter_merged_before_hand_off_is_recorded(bert_dir, taxonomy):
    lora = LoraConfig(r=2, target_modules=["query"])
    stage1 = ContrastiveModel.from_encoder(str(bert_dir), pooling="cls", peft_config=lora)
    stage1.merge_adapter()
    classifier = build_classifier(stage1, taxonomy)
    record = HierconRecord.from_config(classifier.config).stage1["peft"]
    assert record["adapter"] == "merged" and record["r"] == 2
