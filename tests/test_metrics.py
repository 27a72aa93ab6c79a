"""Metrics against values worked out by hand, brute force and scikit-learn."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from hiercon.errors import HierconError
from hiercon.metrics import (
    close_under_ancestors,
    embedding,
    hierarchical_metrics,
    knn_level_accuracy,
    knn_multilabel_f1,
    leaves_to_nodes,
    level_metrics,
    load_metric,
    make_compute_metrics,
    map_at_r,
    multilabel_metrics,
    per_label_report,
    write_evaluation,
)


def on_circle(*degrees: float) -> np.ndarray:
    radians = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


# Four points at 0, 10, 25 and 50 degrees; labels (A, B): {A}, {A}, {B}, {A, B}.
CIRCLE = on_circle(0, 10, 25, 50)
CIRCLE_LABELS = np.array([[1, 0], [1, 0], [0, 1], [1, 1]])


def test_map_at_r_by_hand() -> None:
    # q0: relevant {1, 3}, R=2, ranking 1, 2, 3 -> hits at rank 1 -> AP = (1/1) / 2 = 0.5
    # q1: relevant {0, 3}, R=2, ranking 0, 2, 3 -> AP = 0.5
    # q2: relevant {3},    R=1, nearest is 1    -> AP = 0
    # q3: relevant {0, 1, 2}, R=3, all in top 3 -> AP = 1
    assert map_at_r(CIRCLE, CIRCLE_LABELS) == pytest.approx(0.5)


def test_knn_multilabel_f1_leave_one_out_by_hand() -> None:
    # k=1 copies the nearest other point: q0<-q1 {A}, q1<-q0 {A}, q2<-q1 {A}, q3<-q2 {B}.
    # micro: TP 3 (q0 A, q1 A, q3 B), FP 1 (q2 A), FN 2 (q2 B, q3 A) -> 6 / 9
    # A: TP 2, FP 1, FN 1 -> 4/6; B: TP 1, FP 0, FN 1 -> 2/3; macro 2/3
    scores = knn_multilabel_f1(torch.tensor(CIRCLE), torch.tensor(CIRCLE_LABELS), k=1)
    assert scores == pytest.approx({"micro_f1": 2 / 3, "macro_f1": 2 / 3})


def test_knn_vote_is_similarity_weighted() -> None:
    # Query at 50 degrees, reference 0/10/25 degrees, k=2 -> neighbours 25 ({B}, cos 25) and 10 ({A}, cos 40).
    # Weights (1+cos)/2 normalised: 0.519 for B, 0.481 for A -> predicts {B} only; truth {A, B}.
    reference = CIRCLE[:3]
    neighbours = embedding.nearest_neighbours(CIRCLE[3:], k=2, reference_embeddings=reference)
    assert neighbours.indices.tolist() == [[2, 1]]
    scores = knn_multilabel_f1(
        CIRCLE[3:], CIRCLE_LABELS[3:], k=2, reference_embeddings=reference, reference_labels=CIRCLE_LABELS[:3]
    )
    assert scores["micro_f1"] == pytest.approx(2 / 3)  # TP 1, FN 1


def test_knn_vote_keeps_the_top_label_when_no_label_has_a_majority() -> None:
    # Query at 0 degrees; reference at 10 ({A}), 20 ({B}), 30 ({C}) degrees; k=3 -> about 1/3 weight each.
    reference, reference_labels = on_circle(10, 20, 30), np.eye(3, dtype=int)
    query, truth = on_circle(0), np.array([[1, 0, 0]])
    kwargs = {"k": 3, "reference_embeddings": reference, "reference_labels": reference_labels}
    assert knn_multilabel_f1(query, truth, **kwargs)["micro_f1"] == pytest.approx(1.0)  # nearest: A
    assert knn_multilabel_f1(query, truth, at_least_one=False, **kwargs)["micro_f1"] == 0.0


def test_knn_level_accuracy_by_hand() -> None:
    # k=1 neighbours: q0<-1, q1<-0, q2<-1, q3<-2.
    fine = np.array([0, 0, 1, 2])  # predicted [0, 0, 0, 1] -> 2 of 4
    coarse = np.array([0, 0, 1, 1])  # predicted [0, 0, 0, 1] -> 3 of 4
    scores = knn_level_accuracy(CIRCLE, {"fine": fine, "coarse": coarse}, k=1)
    assert scores == pytest.approx({"fine_accuracy": 0.5, "coarse_accuracy": 0.75})
    as_columns = knn_level_accuracy(CIRCLE, np.stack([fine, coarse], axis=1), k=1, level_names=["f", "c"])
    assert as_columns == pytest.approx({"f_accuracy": 0.5, "c_accuracy": 0.75})
    multi_hot_level = knn_level_accuracy(CIRCLE, [CIRCLE_LABELS], k=1)
    assert multi_hot_level["level_0_micro_f1"] == pytest.approx(2 / 3)


def brute_force_map_at_r(embeddings: np.ndarray, labels: np.ndarray) -> float:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    precisions = []
    for query in range(len(unit)):
        others = [j for j in range(len(unit)) if j != query]
        relevant = {j for j in others if (labels[query] & labels[j]).any()}
        if not relevant:
            continue
        ranking = sorted(others, key=lambda j: (-float(unit[query] @ unit[j]), j))[: len(relevant)]
        hits, total = 0, 0.0
        for rank, item in enumerate(ranking, start=1):
            if item in relevant:
                hits += 1
                total += hits / rank
        precisions.append(total / len(relevant))
    return float(np.mean(precisions))


def test_chunked_search_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 5))
    labels = (rng.random((60, 6)) < 0.25).astype(int)
    expected_map = brute_force_map_at_r(points, labels)
    whole = knn_multilabel_f1(points, labels, k=5)
    chunk_shapes = []
    compute_chunk = embedding._chunk_similarities

    def recording_chunk(*args, **kwargs):
        chunk = compute_chunk(*args, **kwargs)
        chunk_shapes.append(chunk.shape)
        return chunk

    monkeypatch.setattr(embedding, "_chunk_similarities", recording_chunk)
    monkeypatch.setattr(embedding, "SIMILARITIES_PER_CHUNK", 130)  # 130 // 60 = 2 query rows per chunk
    assert map_at_r(points, labels) == pytest.approx(expected_map)
    assert knn_multilabel_f1(points, labels, k=5) == pytest.approx(whole)
    assert set(chunk_shapes) == {(2, 60)} and len(chunk_shapes) == 60


def test_clustered_embeddings_score_higher_than_random() -> None:
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 4, 200)
    clustered = rng.normal(size=(4, 16))[classes] + 0.2 * rng.normal(size=(200, 16))
    noise = rng.normal(size=(200, 16))
    assert map_at_r(clustered, classes) > 0.9 > 0.5 > map_at_r(noise, classes)
    assert knn_multilabel_f1(clustered, classes)["micro_f1"] > knn_multilabel_f1(noise, classes)["micro_f1"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: map_at_r(np.full((3, 2), np.nan), np.eye(3)), "NaN"),
        (lambda: knn_multilabel_f1(np.ones((3, 2)), np.eye(4)), "rows"),
        (lambda: knn_multilabel_f1(np.ones((3, 2)), np.eye(3), k=0), "k must be"),
        (lambda: knn_multilabel_f1(np.ones((3, 2)), np.full((3, 3), 0.5)), "values 0 or 1 only"),
        (lambda: map_at_r(np.ones((3, 2)), np.eye(3)), "no item shares a label"),
        (
            lambda: knn_multilabel_f1(np.ones((3, 2)), np.eye(3), reference_embeddings=np.ones((2, 2))),
            "together",
        ),
        (
            lambda: knn_level_accuracy(np.ones((3, 2)), [np.zeros(3, int)], level_names=["a", "b"]),
            "level_names",
        ),
    ],
)
def test_embedding_metrics_refuse_bad_input(call, message: str) -> None:
    with pytest.raises(HierconError, match=message):
        call()


# Three examples x three labels, threshold 0.5 -> predictions [[1,0,1], [0,1,0], [1,0,0]].
Y_TRUE = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]])
SCORES = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.4], [0.7, 0.3, 0.2]])
HAND_COMPUTED = {
    # label 0: TP 1 FP 1 -> P 1/2 R 1 F1 2/3; label 1: P R F1 1; label 2: TP 1 FN 1 -> P 1 R 1/2 F1 2/3
    "micro_f1": 0.75,  # TP 3, FP 1, FN 1
    "micro_precision": 0.75,
    "micro_recall": 0.75,
    "macro_f1": 7 / 9,
    "macro_precision": 5 / 6,
    "macro_recall": 5 / 6,
    "weighted_f1": (2 / 3 + 1 + 2 * 2 / 3) / 4,  # supports 1, 1, 2
    "samples_f1": 2 / 3,  # rows: 1, 1, 0
    "hamming_loss": 2 / 9,  # two wrong cells
    "subset_accuracy": 2 / 3,
    "map": 17 / 18,  # AP 1, 1 and (1/1 + 2/3) / 2 for label 2 (ranking pos, neg, pos)
    "lrap": 7 / 9,  # rows 1, 1, 1/3 (the true label ranks third)
    "coverage_error": 2.0,  # deepest true rank per row: 2, 1, 3
    "ranking_loss": 1 / 3,  # only row 3 misorders its (true, false) pairs: 2 of 2
}


def test_multilabel_metrics_by_hand() -> None:
    results = multilabel_metrics(torch.tensor(Y_TRUE), torch.tensor(SCORES))
    assert {key: results[key] for key in HAND_COMPUTED} == pytest.approx(HAND_COMPUTED)
    assert all(isinstance(value, float) for value in results.values())


def test_per_label_thresholds_and_names() -> None:
    # Threshold 0.8 on label 0 drops the false positive at 0.7: predictions now equal y_true except row 0 label 2
    results = multilabel_metrics(Y_TRUE, SCORES, thresholds=[0.8, 0.5, 0.5], label_names=["a", "b", "c"])
    assert results["f1/a"] == pytest.approx(1.0)
    assert results["f1/c"] == pytest.approx(2 / 3)
    report = per_label_report(Y_TRUE, SCORES, [0.8, 0.5, 0.5], ["a", "b", "c"])
    assert [row["label"] for row in report] == ["a", "b", "c"]
    assert report[2] == pytest.approx(
        {
            "label": "c",
            "precision": 1.0,
            "recall": 0.5,
            "f1": 2 / 3,
            "support": 2,
            "threshold": 0.5,
            "ap": 5 / 6,
        }
    )
    no_positive = per_label_report([[0, 1], [0, 1]], [[0.2, 0.9], [0.6, 0.8]])
    assert no_positive[0]["ap"] is None and no_positive[0]["support"] == 0


def test_evaluate_module_loads_offline_and_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = load_metric()
    from_evaluate = metric.compute(predictions=SCORES.tolist(), references=Y_TRUE.tolist())
    assert from_evaluate == pytest.approx(multilabel_metrics(Y_TRUE, SCORES))


def test_compute_metrics_takes_logits_and_label_tuples() -> None:
    logits = np.log(SCORES / (1 - SCORES))
    prediction = EvalPrediction(
        predictions=(logits, np.zeros((3, 4))), label_ids=(Y_TRUE.astype(float), np.ones(3))
    )
    results = make_compute_metrics()(prediction)
    assert results == pytest.approx(multilabel_metrics(Y_TRUE, SCORES))
    assert results["micro_f1"] == pytest.approx(0.75)


def test_write_evaluation(tmp_path) -> None:
    report = per_label_report(Y_TRUE, SCORES, 0.5, ["a", "b", "c"])
    paths = write_evaluation(tmp_path / "eval", multilabel_metrics(Y_TRUE, SCORES), report)
    assert json.loads(paths["metrics"].read_text())["micro_f1"] == pytest.approx(0.75)
    with paths["per_label_csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == ["a", "b", "c"] and float(rows[2]["ap"]) == pytest.approx(5 / 6)
    table = paths["per_label_md"].read_text().splitlines()
    assert table[0] == "| label | precision | recall | f1 | support | threshold | ap |"
    assert table[4] == "| c | 1.0000 | 0.5000 | 0.6667 | 2 | 0.5000 | 0.8333 |"
    with pytest.raises(HierconError, match="'bad' is nan"):
        write_evaluation(tmp_path, {"bad": float("nan")}, report)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: multilabel_metrics(Y_TRUE, SCORES[:2]), "shape"),
        (lambda: multilabel_metrics(Y_TRUE, SCORES, thresholds=[0.5, 0.5]), "3 values"),
        (lambda: multilabel_metrics(Y_TRUE, np.full((3, 3), np.nan)), "NaN"),
        (lambda: multilabel_metrics(np.zeros((3, 3)), SCORES), "no label has a positive"),
        (lambda: multilabel_metrics(Y_TRUE, SCORES, label_names=["a"]), "1 label_names"),
        (lambda: make_compute_metrics(label_space="paths"), "label_space"),
    ],
)
def test_classification_metrics_refuse_bad_input(call, message: str) -> None:
    with pytest.raises(HierconError, match=message):
        call()


@pytest.fixture
def emotions():
    """sentiment:positive -> emotion:joy, emotion:love; sentiment:negative -> emotion:anger."""
    taxonomy_module = pytest.importorskip("hiercon.taxonomy", reason="hiercon.taxonomy is not available")
    if not hasattr(taxonomy_module, "LabelTaxonomy"):
        pytest.skip("hiercon.taxonomy does not define LabelTaxonomy yet")
    edges = [
        ("root", "sentiment:positive"),
        ("root", "sentiment:negative"),
        ("sentiment:positive", "emotion:joy"),
        ("sentiment:positive", "emotion:love"),
        ("sentiment:negative", "emotion:anger"),
    ]
    return taxonomy_module.LabelTaxonomy.from_edges(edges, root="root")


def node_rows(taxonomy, *label_sets: set[str]) -> np.ndarray:
    """Raw multi-hot rows over the taxonomy's nodes (no ancestors added)."""
    rows = np.zeros((len(label_sets), taxonomy.num_labels), dtype=int)
    for row, labels in enumerate(label_sets):
        rows[row, [taxonomy.index(label) for label in labels]] = 1
    return rows


JOY, LOVE, ANGER = "emotion:joy", "emotion:love", "emotion:anger"
POS, NEG = "sentiment:positive", "sentiment:negative"


def test_hierarchical_metrics_by_hand(emotions) -> None:
    truth = node_rows(emotions, {JOY}, {ANGER}, {JOY, ANGER})
    predicted = node_rows(emotions, {LOVE}, {NEG, ANGER}, {JOY})
    # augmented truth: {pos, joy}, {neg, anger}, {pos, joy, neg, anger}: 8 nodes
    # augmented preds: {pos, love}, {neg, anger}, {pos, joy}: 6 nodes; overlaps 1 + 2 + 2 = 5
    # hP = 5/6, hR = 5/8, hF = 2 hP hR / (hP + hR) = 5/7; consistent rows: only the second
    results = hierarchical_metrics(truth, predicted, emotions)
    assert results == pytest.approx(
        {
            "hierarchical_precision": 5 / 6,
            "hierarchical_recall": 5 / 8,
            "hierarchical_f1": 5 / 7,
            "consistency_rate": 1 / 3,
        }
    )


def test_level_metrics_by_hand(emotions) -> None:
    truth = close_under_ancestors(node_rows(emotions, {JOY}, {ANGER}, {JOY, ANGER}), emotions)
    predicted = node_rows(emotions, {LOVE}, {NEG, ANGER}, {JOY})
    # sentiment: TP 1 (row 2 neg), FN 3 -> micro 2/5; pos F1 0, neg F1 2/3 -> macro 1/3
    # emotion: TP 2, FP 1 (love), FN 2 -> micro 4/7; joy 2/3, love 0, anger 2/3 -> macro 4/9
    assert level_metrics(truth, predicted, emotions) == pytest.approx(
        {
            "sentiment_micro_f1": 0.4,
            "sentiment_macro_f1": 1 / 3,
            "emotion_micro_f1": 4 / 7,
            "emotion_macro_f1": 4 / 9,
        }
    )


def test_leaves_to_nodes_and_compute_metrics_in_leaf_space(emotions) -> None:
    leaves = [JOY, LOVE, ANGER]
    lifted = leaves_to_nodes([[1, 0, 0], [0, 1, 1]], emotions, leaves)
    assert (lifted == node_rows(emotions, {POS, JOY}, {POS, NEG, LOVE, ANGER})).all()
    truth = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1]])
    logits = np.array([[-2.0, 3.0, -2.0], [-2.0, -2.0, 3.0], [3.0, -2.0, -2.0]])  # love, anger, joy
    results = make_compute_metrics(leaves, emotions, label_space="leaves")(EvalPrediction(logits, truth))
    # lifted predictions are consistent; augmented overlaps 1 + 2 + 2 = 5 of 6 predicted, 8 true
    assert results["hierarchical_f1"] == pytest.approx(5 / 7)
    assert results["consistency_rate"] == 1.0
    assert "level_emotion/micro_f1" in results and "level_sentiment/macro_f1" in results


def test_compute_metrics_inside_trainer_evaluate(tmp_path) -> None:
    from datasets import Dataset
    from tiny_models import tiny_bert_config, write_tiny_tokenizer
    from transformers import BertForSequenceClassification, Trainer, TrainingArguments

    tokenizer = write_tiny_tokenizer(tmp_path / "tokenizer")
    names = ["joy", "anger", "curiosity"]
    config = tiny_bert_config(len(tokenizer), num_labels=3, problem_type="multi_label_classification")
    texts = ["happy joy", "angry mad", "why how", "happy why", "sad", "ok fine"]
    labels = [
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
    ]
    dataset = Dataset.from_dict({"text": texts, "labels": labels}).map(
        lambda batch: tokenizer(batch["text"], padding="max_length", max_length=8), batched=True
    )
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=TrainingArguments(
            tmp_path / "out", per_device_eval_batch_size=4, report_to="none", use_cpu=True
        ),
        eval_dataset=dataset,
        compute_metrics=make_compute_metrics(names, thresholds=[0.5, 0.5, 0.5]),
    )
    results = trainer.evaluate()
    assert {"eval_micro_f1", "eval_macro_f1", "eval_map", "eval_f1/joy", "eval_lrap"} <= set(results)
    assert 0.0 <= results["eval_micro_f1"] <= 1.0 and 0.0 < results["eval_map"] <= 1.0


def node_scores(taxonomy, *label_sets: set[str]) -> np.ndarray:
    """Scores over the taxonomy's nodes: 0.9 for the named nodes, 0.1 elsewhere."""
    return np.where(node_rows(taxonomy, *label_sets) > 0, 0.9, 0.1)


def test_evaluate_multilabel_headline_is_the_macro_over_the_fine_labels(emotions) -> None:
    from hiercon.metrics import evaluate_multilabel
    from hiercon.taxonomy import LabelSpace

    space = LabelSpace(emotions, "nodes")
    truth = space.multi_hot([[JOY], [ANGER], [JOY, ANGER]])
    scores = node_scores(emotions, {POS, JOY}, {NEG, LOVE}, {POS, JOY, NEG, ANGER})
    results = evaluate_multilabel(scores, truth, space, thresholds=0.5)
    # fine labels (joy, love, anger): joy F1 1, love F1 0 (row 1 predicts it), anger TP 1 FN 1 -> 2/3
    assert results["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    # all five nodes: positive 1, negative 1, joy 1, love 0, anger 2/3
    assert results["nodes/macro_f1"] == pytest.approx((3 + 2 / 3) / 5)
    assert results["level_sentiment/macro_f1"] == pytest.approx(1.0)
    assert results["level_emotion/macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert results["consistency_rate"] == pytest.approx(2 / 3)  # love without positive in row 1
    # consistent decoding switches positive on beside love in row 1: the fine labels are unchanged,
    # positive gains a false positive (F1 4/5)
    assert results["consistent/macro_f1"] == results["macro_f1"]
    assert results["consistent/nodes/macro_f1"] == pytest.approx((4 / 5 + 2 + 2 / 3) / 5)
    assert results["consistent/consistency_rate"] == 1.0
    # repairing the scores first caps love at positive's 0.1: love is no longer predicted
    repaired = evaluate_multilabel(scores, truth, space, thresholds=0.5, repair_scores=True)
    assert repaired["macro_f1"] == results["macro_f1"]
    assert repaired["consistent/macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert repaired["consistent/nodes/macro_f1"] == pytest.approx((3 + 2 / 3) / 4)
    assert repaired["consistent/consistency_rate"] == 1.0


def test_evaluate_multilabel_on_the_leaves_lifts_predictions_to_the_nodes(emotions) -> None:
    from hiercon.metrics import evaluate_multilabel
    from hiercon.taxonomy import LabelSpace

    space = LabelSpace(emotions, "leaves")
    truth_nodes = node_rows(emotions, {POS, JOY}, {NEG, ANGER}, {POS, JOY, NEG, ANGER})
    scores = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.4], [0.8, 0.1, 0.7]])  # joy, love, anger
    results = evaluate_multilabel(scores, truth_nodes, space, thresholds=[0.5, 0.5, 0.5], per_label_f1=True)
    assert results["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)  # love absent from truth and predictions
    # lifted: positive 1, negative (predicted in row 2 only) 2/3, joy 1, anger 2/3
    assert results["nodes/macro_f1"] == pytest.approx((2 + 4 / 3) / 4)
    assert results["f1/emotion:anger"] == pytest.approx(2 / 3)
    assert results["consistency_rate"] == 1.0
    assert results["consistent/macro_f1"] == results["macro_f1"]


def test_flat_evaluation_has_no_hierarchy_keys() -> None:
    from hiercon.metrics import evaluate_multilabel

    results = evaluate_multilabel(SCORES, Y_TRUE)
    assert results == pytest.approx(multilabel_metrics(Y_TRUE, SCORES))
    assert not any("/" in key for key in results)


def test_metrics_json_macro_f1_is_over_the_fine_labels(emotions, tmp_path) -> None:
    from hiercon.recipe.evaluation import score_split

    truth_nodes = node_rows(emotions, {POS, JOY}, {NEG, ANGER}, {POS, JOY, NEG, ANGER})
    scores = node_scores(emotions, {POS, JOY}, {NEG, LOVE}, {POS, JOY, NEG, ANGER})
    metrics, per_label = score_split(scores, truth_nodes, [0.5] * 5, emotions, "nodes")
    paths = write_evaluation(tmp_path, metrics, per_label)
    written = json.loads(paths["metrics"].read_text())
    assert written["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert written["nodes/macro_f1"] == pytest.approx((3 + 2 / 3) / 5)
    assert [row["label"] for row in per_label] == emotions.labels


def test_evaluate_multilabel_refuses_bad_input(emotions) -> None:
    from hiercon.metrics import evaluate_multilabel
    from hiercon.taxonomy import LabelSpace

    space = LabelSpace(emotions, "leaves")
    with pytest.raises(HierconError, match="label space has 3"):
        evaluate_multilabel(np.zeros((2, 4)), np.zeros((2, 3)), space)
    with pytest.raises(HierconError, match="0 or 1"):
        evaluate_multilabel(np.zeros((2, 3)), np.full((2, 3), 0.5), space)
    with pytest.raises(HierconError, match="columns"):
        evaluate_multilabel(np.zeros((2, 3)), np.zeros((2, 4)), space)


def test_compute_metrics_is_the_one_evaluation(emotions) -> None:
    from hiercon.errors import LabelFormatError
    from hiercon.metrics import evaluate_multilabel
    from hiercon.taxonomy import LabelSpace

    truth = node_rows(emotions, {POS, JOY}, {NEG, ANGER}, {POS, JOY, NEG, ANGER})
    scores = node_scores(emotions, {POS, JOY}, {NEG, LOVE}, {POS, JOY, NEG, ANGER})
    logits = np.log(scores / (1 - scores))
    results = make_compute_metrics(taxonomy=emotions)(EvalPrediction(logits, truth.astype(float)))
    expected = evaluate_multilabel(scores, truth, LabelSpace(emotions, "nodes"))
    assert results == pytest.approx(expected)
    assert results["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3) and "consistent/macro_f1" in results
    with pytest.raises(LabelFormatError, match="neither"):
        make_compute_metrics([LOVE, JOY, ANGER], emotions)(EvalPrediction(logits[:, 2:], truth[:, 2:]))
