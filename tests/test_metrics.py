"""Metrics against values worked out by hand, brute force and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hiercon.errors import HierconError
from hiercon.metrics import embedding, knn_level_accuracy, knn_multilabel_f1, map_at_r


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
    monkeypatch.setattr(embedding, "SIMILARITIES_PER_CHUNK", 7)  # chunks of one query row
    assert map_at_r(points, labels) == pytest.approx(expected_map)
    assert knn_multilabel_f1(points, labels, k=5) == pytest.approx(whole)


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
        (lambda: knn_multilabel_f1(np.ones((3, 2)), np.full((3, 3), 0.5)), "only 0 and 1"),
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
