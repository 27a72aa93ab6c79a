"""Threshold tuning with a pooled fallback for labels with little held-out support."""

from __future__ import annotations

import numpy as np
import pytest

from hiercon.errors import HierconError
from hiercon.metrics.thresholds import (
    DEFAULT_MIN_POSITIVES,
    DEFAULT_SHRINKAGE,
    describe_threshold_rule,
    tune_thresholds,
    tune_thresholds_with_fallback,
)


def _separable(rng, n, rate, low, high):
    """Labels whose positives score in [high, high + 0.1] and negatives in [low, low + 0.1]."""
    truth = (rng.random(n) < rate).astype(float)
    scores = np.where(truth > 0, high + 0.1 * rng.random(n), low + 0.1 * rng.random(n))
    return truth, scores


def _with_rare_label(rng, columns, positives, negative_top, positive_low, positive_span=0.0):
    """The ``columns`` of ``_separable`` plus a last, rare label: ``positives`` positives scored in
    ``[positive_low, positive_low + positive_span]`` and negatives in ``[0, negative_top]``."""
    n = len(columns[0][0])
    truth = np.stack([t for t, _ in columns], axis=1)
    scores = np.stack([s for _, s in columns], axis=1)
    rare_truth = np.zeros(n)
    rare_truth[:positives] = 1
    rare_scores = negative_top * rng.random(n)
    rare_scores[:positives] = positive_low + positive_span * rng.random(positives)
    return np.column_stack([truth, rare_truth]), np.column_stack([scores, rare_scores])


def test_a_label_with_one_dev_positive_gets_the_pooled_threshold():
    rng = np.random.default_rng(0)
    columns = [_separable(rng, 300, 0.3, 0.2, 0.6) for _ in range(3)]
    # A rare label: one positive, scored 0.95, above negatives that reach 0.9.
    truth, scores = _with_rare_label(rng, columns, positives=1, negative_top=0.9, positive_low=0.95)

    overfit = tune_thresholds(truth, scores, min_positives=1)[3]
    assert overfit > 0.9  # just under the one positive: a threshold that fits that example only
    tuned = tune_thresholds_with_fallback(truth, scores)
    assert tuned.sources == ("own", "own", "own", "pooled")
    pooled = tuned.rule["pooled_threshold"]
    assert 0.3 <= pooled <= 0.6 and tuned.thresholds[3] == pooled
    assert all(0.3 <= value <= 0.6 for value in tuned.thresholds[:3])
    assert tuned.rule["min_positives"] == DEFAULT_MIN_POSITIVES == 5
    assert tuned.rule["labels_by_source"] == {"own": 3, "group": 0, "pooled": 1, "default": 0}
    assert tuned.positives.tolist()[3] == 1


def test_level_groups_pool_within_the_level():
    rng = np.random.default_rng(1)
    coarse = [_separable(rng, 400, 0.4, 0.5, 0.85) for _ in range(2)]  # high scores
    fine = [_separable(rng, 400, 0.1, 0.01, 0.2) for _ in range(2)]  # low scores
    truth = np.stack([t for t, _ in coarse + fine], axis=1)
    scores = np.stack([s for _, s in coarse + fine], axis=1)
    truth[:, 3] = 0
    truth[5, 3] = 1  # a rare fine label
    scores[5, 3] = 0.25
    levels = [0, 0, 1, 1]
    by_level = tune_thresholds_with_fallback(truth, scores, groups=levels)
    assert by_level.sources[3] == "group" and by_level.rule["fallback"] == "level"
    # The fine level's pooled threshold separates the fine labels' scores (0.01-0.11 vs 0.2-0.3).
    assert 0.11 < by_level.thresholds[3] <= 0.2
    # Pooled over every label, the threshold suits the frequent coarse labels, not the fine ones.
    assert tune_thresholds(truth, scores)[3] > 0.3


def test_a_group_without_enough_positives_falls_back_to_all_labels_then_to_the_default():
    rng = np.random.default_rng(2)
    truth, scores = _separable(rng, 200, 0.3, 0.1, 0.7)
    matrix = np.column_stack([truth, np.zeros(200)])
    both = np.column_stack([scores, rng.random(200) * 0.5])
    tuned = tune_thresholds_with_fallback(matrix, both, groups=[0, 1])
    assert tuned.sources == ("own", "pooled")
    empty = tune_thresholds_with_fallback(np.zeros((10, 2)), np.full((10, 2), 0.7), default=0.35)
    assert empty.sources == ("default", "default") and empty.thresholds.tolist() == [0.35, 0.35]


def test_shrinkage_pulls_an_own_threshold_toward_the_pooled_one_by_its_positives():
    rng = np.random.default_rng(4)
    frequent = [_separable(rng, 500, 0.4, 0.1, 0.6) for _ in range(2)]
    # A label with 6 positives whose own F1 curve is flat from 0.11 to 0.9: its lower median is low.
    truth, scores = _with_rare_label(rng, frequent, positives=6, negative_top=0.1, positive_low=0.9, positive_span=0.05)
    plain = tune_thresholds_with_fallback(truth, scores)
    shrunk = tune_thresholds_with_fallback(truth, scores, shrinkage=DEFAULT_SHRINKAGE)
    pooled, own, n = plain.rule["pooled_threshold"], plain.thresholds, plain.positives
    assert plain.sources == shrunk.sources == ("own", "own", "own") and n[2] == 6
    expected = (n * own + DEFAULT_SHRINKAGE * pooled) / (n + DEFAULT_SHRINKAGE)
    assert np.allclose(shrunk.thresholds, expected)
    # the rare label moves 5/11 of the way; the frequent ones (about 200 positives) barely move
    assert abs(shrunk.thresholds[2] - own[2]) == pytest.approx(5 / 11 * abs(pooled - own[2]))
    assert np.all(np.abs(shrunk.thresholds[:2] - own[:2]) <= 5 / 150 * np.abs(pooled - own[:2]) + 1e-12)
    assert shrunk.rule["shrinkage"] == DEFAULT_SHRINKAGE and plain.rule["shrinkage"] == 0
    assert "shrunk toward that pooled threshold with weight 5 / (n + 5)" in describe_threshold_rule(shrunk.rule)
    with pytest.raises(HierconError, match="shrinkage must be >= 0"):
        tune_thresholds(truth, scores, shrinkage=-1)


def test_rule_is_described_and_inputs_are_checked():
    rng = np.random.default_rng(3)
    truth, scores = _separable(rng, 100, 0.5, 0.1, 0.7)
    rule = tune_thresholds_with_fallback(truth[:, None], scores[:, None]).rule
    text = describe_threshold_rule({**rule, "split": "validation"})
    assert "fewer than 5 positives" in text and "`validation`" in text and "all labels pooled" in text
    assert "fixed threshold, 0.3" in describe_threshold_rule({"fixed": 0.3})
    with pytest.raises(HierconError, match="min_positives"):
        tune_thresholds(truth[:, None], scores[:, None], min_positives=-1)
    with pytest.raises(HierconError, match="one group id per label"):
        tune_thresholds(truth[:, None], scores[:, None], groups=[0, 1])
