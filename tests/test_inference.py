"""Saved classifiers load in a stock pipeline; MultiLabelPredictor thresholds and decodes consistently.

Includes both stages end to end (ContrastiveTrainer -> build_classifier -> ClassifierTrainer -> save ->
pipeline / MultiLabelPredictor) for the tiny BERT and the tiny ViT.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from tiny_classifiers import emotion_taxonomy
from tiny_models import quick_args, save_tiny_bert, save_tiny_vit
from transformers import AutoImageProcessor, AutoTokenizer, pipeline

from hiercon import (
    ClassifierTrainer,
    ContrastiveModel,
    ContrastiveTrainer,
    MultiLabelPredictor,
    build_classifier,
)
from hiercon.errors import ConfigError
from hiercon.losses import SupConLoss
from hiercon.modeling.classifier import load_classifier
from hiercon.record import HierconRecord, set_thresholds

TEXTS = [
    ("happy glad joy", ["joy"]),
    ("love thanks awesome", ["love"]),
    ("angry mad hate", ["anger"]),
    ("sad cry grief", ["sadness"]),
    ("joy fun win", ["joy"]),
    ("love nice glad", ["love"]),
    ("rage awful worst", ["anger"]),
    ("sorry miss alone", ["sadness"]),
]


@pytest.fixture(scope="module")
def taxonomy():
    return emotion_taxonomy()


def _args(folder, **overrides):
    return quick_args(
        folder, **{"per_device_train_batch_size": 8, "learning_rate": 1e-2, "max_steps": 3, **overrides}
    )


@pytest.fixture(scope="module")
def text_model_dir(tmp_path_factory, taxonomy):
    """Both stages on the tiny BERT, saved by ClassifierTrainer with tuned thresholds."""
    root = tmp_path_factory.mktemp("text")
    encoder_dir = save_tiny_bert(root / "encoder")
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    data = Dataset.from_dict(
        {**tokenizer([t for t, _ in TEXTS]), "labels": taxonomy.encode([n for _, n in TEXTS]).tolist()}
    )
    stage1 = ContrastiveModel.from_encoder(str(encoder_dir), pooling="cls", projection_dim=8)
    ContrastiveTrainer(
        model=stage1,
        args=_args(root / "stage1", max_steps=2, learning_rate=1e-3),
        train_dataset=data,
        loss=SupConLoss(temperature=0.1),
        processing_class=tokenizer,
    ).train()

    classifier = build_classifier(stage1, taxonomy)
    names = Dataset.from_dict({**tokenizer([t for t, _ in TEXTS]), "labels": [n for _, n in TEXTS]})
    trainer = ClassifierTrainer(
        classifier,
        _args(root / "stage2"),
        train_dataset=names,
        eval_dataset=names,
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.tune_thresholds_on()
    trainer.save_model(str(root / "classifier"))
    return root / "classifier"


@pytest.fixture(scope="module")
def image_model_dir(tmp_path_factory):
    """Both stages on the tiny ViT with a flat label list, saved with its image processor."""
    root = tmp_path_factory.mktemp("image")
    # The image pipeline converts every image to RGB, so a pipeline-ready ViT takes 3 channels.
    encoder_dir = save_tiny_vit(root / "encoder", num_channels=3)
    processor = AutoImageProcessor.from_pretrained(encoder_dir)
    generator = torch.Generator().manual_seed(0)
    pixels = processor([_image(generator) for _ in range(8)], return_tensors="pt")["pixel_values"]
    labels = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]] * 2
    data = Dataset.from_dict({"pixel_values": pixels.tolist(), "labels": labels})
    stage1 = ContrastiveModel.from_encoder(str(encoder_dir), projection_dim=8)
    ContrastiveTrainer(
        model=stage1, args=_args(root / "stage1", max_steps=1), train_dataset=data, loss=SupConLoss(), views=1
    ).train()
    classifier = build_classifier(stage1, labels=["shirt", "shoe", "bag"])
    trainer = ClassifierTrainer(
        classifier, _args(root / "stage2"), train_dataset=data, processing_class=processor
    )
    trainer.train()
    trainer.save_model(str(root / "classifier"))
    return root / "classifier"


def _image(generator):
    values = (torch.rand(28, 28, 3, generator=generator) * 255).to(torch.uint8).numpy()
    return Image.fromarray(values, mode="RGB")


def _pipeline_scores(pipe, inputs, labels):
    rows = pipe(inputs, top_k=None if pipe.task == "text-classification" else len(labels))
    return np.array([[{e["label"]: e["score"] for e in row}[label] for label in labels] for row in rows])


def test_text_pipeline_scores_equal_model_sigmoid(text_model_dir, taxonomy):
    pipe = pipeline("text-classification", model=str(text_model_dir))
    texts = ["happy love", "angry sad cry", "what"]
    model = load_classifier(text_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
    with torch.no_grad():
        expected = torch.sigmoid(model(**tokenizer(texts, return_tensors="pt", padding=True)).logits).numpy()
    np.testing.assert_allclose(_pipeline_scores(pipe, texts, taxonomy.labels), expected, rtol=1e-5, atol=1e-6)


def test_image_pipeline_scores_equal_model_sigmoid(image_model_dir):
    pipe = pipeline("image-classification", model=str(image_model_dir))
    generator = torch.Generator().manual_seed(1)
    images = [_image(generator) for _ in range(3)]
    model = load_classifier(image_model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(image_model_dir)
    with torch.no_grad():
        expected = torch.sigmoid(model(**processor(images, return_tensors="pt")).logits).numpy()
    np.testing.assert_allclose(
        _pipeline_scores(pipe, images, ["shirt", "shoe", "bag"]), expected, rtol=1e-5, atol=1e-6
    )


def test_thresholds_taxonomy_and_provenance_round_trip(text_model_dir, taxonomy):
    predictor = MultiLabelPredictor.from_pretrained(text_model_dir)
    record = HierconRecord.from_config(predictor.pipeline.model.config)
    assert predictor.taxonomy == taxonomy == record.taxonomy
    assert predictor.labels == taxonomy.labels == list(record.labels)
    np.testing.assert_allclose(predictor.thresholds, record.thresholds)
    assert len(record.thresholds) == taxonomy.num_labels
    assert record.stage1["loss"] == "SupConLoss" and "Khosla" in record.stage1["citation"]
    assert record.stage1["pooling"] == "cls"
    assert record.stage2["loss"] == "bce" and record.stage2["freeze_encoder"] is False
    assert sorted(path.suffix for path in text_model_dir.iterdir()) == [
        ".json",
        ".json",
        ".json",
        ".md",
        ".safetensors",
    ]


def test_predictor_output_follows_thresholds(text_model_dir, taxonomy):
    predictor = MultiLabelPredictor.from_pretrained(text_model_dir)
    texts = ["happy love", "angry sad cry"]
    scores = predictor.predict_proba(texts)
    assert scores.shape == (2, taxonomy.num_labels)
    predictor.set_thresholds([0.0] * taxonomy.num_labels)
    everything = predictor(texts, consistent=False)
    assert [len(row) for row in everything] == [taxonomy.num_labels] * 2
    assert [entry["score"] for entry in everything[0]] == sorted(scores[0], reverse=True)
    assert len(predictor(texts, top_k=2)[0]) == 2
    predictor.set_thresholds([1.0] * taxonomy.num_labels)
    assert predictor(texts) == [[], []]
    single = predictor("happy")
    assert isinstance(single, list) and len(single) == 1


def test_consistent_decoding_closes_and_optionally_repairs(text_model_dir, taxonomy):
    predictor = MultiLabelPredictor.from_pretrained(text_model_dir)
    thresholds = dict.fromkeys(taxonomy.labels, 0.5) | {"positive": 0.8}
    predictor.set_thresholds([thresholds[label] for label in taxonomy.labels])
    row = dict.fromkeys(taxonomy.labels, 0.1) | {"positive": 0.6, "joy": 0.7, "negative": 0.3, "anger": 0.9}
    scores = np.array([[row[label] for label in taxonomy.labels]])

    def chosen(picked: np.ndarray) -> set[str]:
        return {taxonomy.labels[i] for i in np.flatnonzero(picked[0])}

    used, closed = predictor.decide(scores)
    # each label clears its own threshold; positive and negative are added by closure
    assert chosen(closed) == {"joy", "positive", "anger", "negative"}
    assert np.array_equal(used, scores)
    assert bool(taxonomy.is_consistent(torch.as_tensor(closed.astype(np.float32)))[0])

    repairing = MultiLabelPredictor.from_pretrained(text_model_dir, repair_scores=True)
    repairing.set_thresholds(predictor.thresholds)
    repaired, picked = repairing.decide(scores)
    assert chosen(picked) == {"joy", "positive"}  # joy repaired to 0.6 >= 0.5, its parent added by closure
    assert repaired[0, taxonomy.index("anger")] == pytest.approx(0.3)  # anger capped by its parent
    assert bool(taxonomy.is_consistent(torch.as_tensor(repaired))[0])

    _, raw = predictor.decide(scores, consistent=False)
    assert chosen(raw) == {"joy", "anger"}


def test_image_predictor_and_flat_labels(image_model_dir):
    predictor = MultiLabelPredictor.from_pretrained(image_model_dir)
    assert not predictor.is_hierarchical
    generator = torch.Generator().manual_seed(2)
    images = [_image(generator) for _ in range(2)]
    predictor.set_thresholds([0.0, 0.0, 0.0])
    rows = predictor(images)
    assert [sorted(entry["label"] for entry in row) for row in rows] == [["bag", "shirt", "shoe"]] * 2
    np.testing.assert_allclose(
        [[{e["label"]: e["score"] for e in row}[name] for name in predictor.labels] for row in rows],
        predictor.predict_proba(images),
    )


def test_predictor_refuses_single_label_models(tmp_path, taxonomy):
    encoder_dir = save_tiny_bert(tmp_path / "encoder")
    classifier = build_classifier(str(encoder_dir), taxonomy)
    classifier.config.problem_type = "single_label_classification"
    classifier.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(tmp_path / "model")
    with pytest.raises(ConfigError, match="multi-label"):
        MultiLabelPredictor.from_pretrained(tmp_path / "model")
    set_thresholds(classifier.config, [0.5] * taxonomy.num_labels)
    with pytest.raises(ConfigError, match="trust_remote_code"):
        MultiLabelPredictor.from_pretrained(tmp_path / "model", trust_remote_code=True)


def test_grayscale_image_model_gets_grayscale_inputs(tmp_path):
    encoder_dir = save_tiny_vit(tmp_path / "encoder", num_channels=1)
    classifier = build_classifier(str(encoder_dir), labels=["top", "trouser"])
    processor = AutoImageProcessor.from_pretrained(encoder_dir)
    classifier.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    generator = torch.Generator().manual_seed(3)
    images = [
        Image.fromarray((torch.rand(28, 28, generator=generator) * 255).to(torch.uint8).numpy(), mode="L")
        for _ in range(2)
    ]
    images[1].save(tmp_path / "second.png")
    predictor = MultiLabelPredictor.from_pretrained(tmp_path / "model")
    classifier.eval()
    with torch.no_grad():
        expected = torch.sigmoid(classifier(**processor(images, return_tensors="pt")).logits).numpy()
    np.testing.assert_allclose(
        predictor.predict_proba([images[0], str(tmp_path / "second.png")]), expected, rtol=1e-5, atol=1e-6
    )


def test_from_pipeline_matches_from_pretrained(text_model_dir):
    texts = ["happy love", "mad"]
    wrapped = MultiLabelPredictor.from_pipeline(pipeline("text-classification", model=str(text_model_dir)))
    loaded = MultiLabelPredictor.from_pretrained(text_model_dir)
    np.testing.assert_allclose(wrapped.predict_proba(texts), loaded.predict_proba(texts))
    assert wrapped(texts) == loaded(texts)
    assert wrapped.predict_labels(texts) == [
        [entry["label"] for entry in sorted(row, key=lambda e: loaded.labels.index(e["label"]))]
        for row in loaded(texts)
    ]


def test_unknown_architecture_is_refused(tmp_path):
    save_tiny_bert(tmp_path)
    with pytest.raises(ConfigError, match="ForSequenceClassification"):
        MultiLabelPredictor.from_pretrained(tmp_path)


def test_a_tokenizer_without_a_limit_is_saved_bounded_by_the_position_embeddings(tmp_path, taxonomy):
    """A 3,000-token text overruns a 512-position BERT; the saved tokenizer truncates it at 512."""
    encoder_dir = save_tiny_bert(tmp_path / "encoder", max_position_embeddings=512)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    tokenizer.model_max_length = int(1e30)  # what a tokenizer saved without a limit reports
    classifier = build_classifier(ContrastiveModel.from_encoder(str(encoder_dir), pooling="cls"), taxonomy)
    trainer = ClassifierTrainer(classifier, _args(tmp_path / "run"), processing_class=tokenizer)
    trainer.save_model(str(tmp_path / "classifier"))
    assert tokenizer.model_max_length == int(1e30), "the trainer's tokenizer is left as it was"
    assert AutoTokenizer.from_pretrained(tmp_path / "classifier").model_max_length == 512

    long_text = " ".join(["happy", "sad", "mad"] * 1000)
    assert len(tokenizer(long_text)["input_ids"]) > 3000
    predictor = MultiLabelPredictor.from_pretrained(tmp_path / "classifier")
    assert predictor.max_length == 512
    assert predictor.predict_proba([long_text]).shape == (1, taxonomy.num_labels)
    unbounded = pipeline("text-classification", model=str(tmp_path / "classifier"), tokenizer=tokenizer)
    with pytest.raises((RuntimeError, IndexError)):
        unbounded(long_text, top_k=None)
    assert MultiLabelPredictor.from_pipeline(unbounded).max_length == 512  # the position limit
    assert len(MultiLabelPredictor.from_pipeline(unbounded).predict_proba(long_text)[0]) == taxonomy.num_labels


def test_the_position_limit_of_padding_offset_models():
    from transformers import BertConfig, RobertaConfig

    from hiercon.modeling.lengths import position_limit

    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(object()) is None
