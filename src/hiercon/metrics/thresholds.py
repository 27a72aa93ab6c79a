"""Per-label decision thresholds tuned for F1 on held-out data, with a pooled fallback for rare labels.

The sweep bins every score once into the threshold grid and counts true and false positives per bin,
which is faster than scikit-learn's ``precision_recall_curve`` label by label (about 5 ms against
47 ms for 1,000 examples x 39 labels, 23 ms against 64 ms for 5,427 x 28).

A label's own F1-optimal threshold is only as good as its held-out positives. With one positive the
best threshold sits just under that example's score (recall jumps from 0 to 1 there), which says
little about the next example; with fewer than five, one example moves recall by more than 20 points.
Labels with fewer than ``min_positives`` held-out positives (default :data:`DEFAULT_MIN_POSITIVES`)
therefore take a threshold tuned on many labels pooled: the micro-F1-optimal threshold of their group
(e.g. their taxonomy level), or of all labels. Pooling is the usual remedy for rare labels in
threshold tuning (the "SCut" strategy with a shared fallback, Yang 2001, "A Study of Thresholding
Strategies for Text Categorization", SIGIR).

A label with enough positives still tunes its threshold on few of them, and its F1 curve over the grid
is then flat and jagged: the best point can sit far from where the next examples need it. With
``shrinkage`` k > 0 its own threshold is shrunk toward the pooled threshold of its group, weighted by
its held-out positives n⁺, as a pseudo-count prior:

.. math::

    t = \\frac{n^+ t_{\\text{own}} + k \\, t_{\\text{pooled}}}{n^+ + k}

so a label with 5 positives moves halfway to the pooled threshold when k = 5, and one with 100 barely
moves. The recipe and ``ClassifierTrainer`` use k = :data:`DEFAULT_SHRINKAGE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hiercon.errors import HierconError
from hiercon.taxonomy.label_space import check_multi_hot

DEFAULT_GRID = np.round(np.linspace(0.01, 0.99, 99), 2)
#: Held-out positives a label needs for a threshold of its own (see the module docstring).
DEFAULT_MIN_POSITIVES = 5
#: Pseudo-count k of the pooled threshold in a label's own threshold (see the module docstring): tuned on
#: one half of dev and scored on the other, every k in 2-40 beat k = 0 on each GoEmotions benchmark seed
#: (``benchmarks/threshold_shrinkage.py``); 5 equals :data:`DEFAULT_MIN_POSITIVES`.
DEFAULT_SHRINKAGE = 5.0
FALLBACKS = ("global", "level")


def _as_2d(name: str, values: object) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    if array.ndim != 2:
        raise HierconError(f"{name} must be a 2-D [examples, labels] array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise HierconError(f"{name} holds NaN or infinite values")
    return array


def _check_grid(grid: object) -> np.ndarray:
    grid = np.unique(np.asarray(grid, dtype=np.float64).ravel())
    if grid.size == 0:
        raise HierconError("the threshold grid is empty")
    if not np.isfinite(grid).all():
        raise HierconError("the threshold grid holds NaN or infinite values")
    return grid


def _threshold_counts(
    y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(true positives [labels, grid], false positives [labels, grid], positives [labels])`` when
    predicting ``score >= t`` at every grid threshold ``t``.

    Each score is binned once into the sorted grid, so the work is ``O(examples x labels + labels x grid)``.
    """
    num_labels = scores.shape[1]
    # bins[i, c] = how many grid thresholds lie at or below the score, i.e. thresholds 0..bins-1 accept it.
    bins = np.searchsorted(grid, scores, side="right")
    label_ids = np.broadcast_to(np.arange(num_labels), scores.shape)
    positive = y_true > 0.5
    hist_pos = np.zeros((num_labels, grid.size + 1))
    hist_neg = np.zeros((num_labels, grid.size + 1))
    np.add.at(hist_pos, (label_ids[positive], bins[positive]), 1)
    np.add.at(hist_neg, (label_ids[~positive], bins[~positive]), 1)
    # Accepted at threshold j: every score whose bin is above j.
    true_pos = np.cumsum(hist_pos[:, ::-1], axis=1)[:, ::-1][:, 1:]
    false_pos = np.cumsum(hist_neg[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return true_pos, false_pos, positive.sum(axis=0).astype(np.float64)


def _f1(true_pos: np.ndarray, false_pos: np.ndarray, positives: np.ndarray) -> np.ndarray:
    denominator = true_pos + false_pos + positives[..., None]  # 2 TP + FP + FN
    return np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)


def f1_per_threshold(y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of every label at every grid threshold (predict ``score >= t``): array ``[labels, len(grid)]``."""
    return _f1(*_threshold_counts(y_true, scores, grid))


def _best_thresholds(f1: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(threshold, best F1)`` of each row of ``f1 [rows, grid]``: the lower median of the grid points
    reaching the row's best F1, which lies inside the plateau, away from its fragile edges."""
    best = f1.max(axis=1, keepdims=True)
    at_best = np.isclose(f1, best, rtol=0, atol=1e-12)
    thresholds = np.array([grid[row][(row.sum() - 1) // 2] for row in at_best])
    return thresholds, best[:, 0]


# Where a label's threshold comes from (``TunedThresholds.sources``).
OWN, GROUP, POOLED, DEFAULT = "own", "group", "pooled", "default"


@dataclass(frozen=True)
class TunedThresholds:
    """Thresholds tuned by :func:`tune_thresholds_with_fallback` and where each comes from.

    Attributes:
        thresholds: ``float`` array ``[labels]``.
        sources: per label, ``"own"`` (tuned on the label's own held-out examples), ``"group"`` (the
            pooled threshold of its group, e.g. its taxonomy level), ``"pooled"`` (pooled over all
            labels) or ``"default"`` (the constant ``default``: nothing pooled had positives).
        positives: held-out positives per label.
        rule: the tuning rule, JSON-safe (``min_positives``, ``fallback``, ``default``, the grid's range
            and how many labels took each source), as stored in ``config.hiercon["threshold_rule"]``.
    """

    thresholds: np.ndarray
    sources: tuple[str, ...]
    positives: np.ndarray
    rule: dict[str, Any] = field(default_factory=dict)


def _pooled(
    true_pos: np.ndarray, false_pos: np.ndarray, positives: np.ndarray, members: np.ndarray, grid: np.ndarray
) -> tuple[float, float, float]:
    """``(threshold, micro-F1, positives)`` of the labels in ``members`` pooled."""
    pooled_positives = positives[members].sum()
    f1 = _f1(
        true_pos[members].sum(axis=0)[None], false_pos[members].sum(axis=0)[None], pooled_positives[None]
    )
    thresholds, best = _best_thresholds(f1, grid)
    return float(thresholds[0]), float(best[0]), float(pooled_positives)


def _check_inputs(y_true: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_2d("y_true", y_true)
    scores = _as_2d("scores", scores)
    if y_true.shape != scores.shape:
        raise HierconError(f"y_true has shape {y_true.shape} but scores have shape {scores.shape}")
    check_multi_hot(y_true, "y_true", error=HierconError)
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        raise HierconError("scores must be probabilities in [0, 1] (apply a sigmoid to logits first)")
    return y_true, scores


def _check_groups(groups: object, num_labels: int) -> np.ndarray | None:
    if groups is None:
        return None
    groups = np.asarray(groups).ravel()
    if groups.shape != (num_labels,):
        raise HierconError(f"groups needs one group id per label ({num_labels}), got shape {groups.shape}")
    return groups


def tune_thresholds_with_fallback(
    y_true: object,
    scores: object,
    grid: object = DEFAULT_GRID,
    default: float = 0.5,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    groups: object = None,
    shrinkage: float = 0.0,
) -> TunedThresholds:
    """Per-label F1-optimal thresholds, with a pooled threshold for labels with little held-out support.

    Args:
        y_true: multi-hot ground truth ``[examples, labels]`` (0/1).
        scores: predicted probabilities ``[examples, labels]`` (sigmoid outputs).
        grid: candidate thresholds; a label is predicted when ``score >= threshold``.
        default: the threshold when even the pooled tuning has no positive example (or F1 0).
        min_positives: held-out positives a label needs for a threshold of its own (0: every label
            with a positive tunes its own). Below it, the label takes the micro-F1-optimal threshold of
            its group pooled (when the group has ``min_positives`` positives), else of all labels pooled.
        groups: a group id per label (e.g. each label's taxonomy level: ``fallback="level"``), or None
            to pool all labels (``fallback="global"``).
        shrinkage: pseudo-count k of the fallback threshold in the threshold of a label tuned on its
            own: ``(n⁺ t_own + k t_fallback) / (n⁺ + k)`` (0: the own threshold as tuned).

    A label tuning its own threshold whose best F1 is 0 (the model never scores a positive above the
    grid's lowest point) takes the fallback too. When several grid points reach a best F1, the lower
    median of them is taken.
    """
    y_true, scores = _check_inputs(y_true, scores)
    grid = _check_grid(grid)
    if not 0 <= default <= 1:
        raise HierconError(f"the default threshold must lie in [0, 1], got {default}")
    if (
        isinstance(min_positives, bool)
        or not isinstance(min_positives, (int, np.integer))
        or min_positives < 0
    ):
        raise HierconError(f"min_positives must be a non-negative integer, got {min_positives!r}")
    groups = _check_groups(groups, scores.shape[1])
    if not shrinkage >= 0:
        raise HierconError(f"shrinkage must be >= 0, got {shrinkage}")
    true_pos, false_pos, positives = _threshold_counts(y_true, scores, grid)
    own, own_f1 = _best_thresholds(_f1(true_pos, false_pos, positives), grid)
    everything = np.ones(scores.shape[1], dtype=bool)
    pooled, pooled_f1, pooled_positives = _pooled(true_pos, false_pos, positives, everything, grid)
    pooled_ok = pooled_positives >= max(min_positives, 1) and pooled_f1 > 0
    overall = (pooled, POOLED) if pooled_ok else (default, DEFAULT)
    by_group: dict[Any, tuple[float, str]] = {}
    for group in np.unique(groups) if groups is not None else ():
        value, f1, count = _pooled(true_pos, false_pos, positives, groups == group, grid)
        by_group[group] = (value, GROUP) if count >= max(min_positives, 1) and f1 > 0 else overall
    thresholds = np.empty(scores.shape[1])
    sources: list[str] = []
    for label in range(scores.shape[1]):
        fallback, source = by_group[groups[label]] if groups is not None else overall
        if positives[label] >= max(min_positives, 1) and own_f1[label] > 0:
            weight = positives[label] / (positives[label] + shrinkage)
            thresholds[label], source = weight * own[label] + (1 - weight) * fallback, OWN
        else:
            thresholds[label] = fallback
        sources.append(source)
    rule = {
        "min_positives": int(min_positives),
        "fallback": "global" if groups is None else "level",
        "pooled_threshold": pooled if pooled_ok else None,
        "default": float(default),
        "shrinkage": float(shrinkage),
        "grid": [float(grid.min()), float(grid.max()), int(grid.size)],
        "labels_by_source": {name: sources.count(name) for name in (OWN, GROUP, POOLED, DEFAULT)},
    }
    return TunedThresholds(thresholds, tuple(sources), positives, rule)


def tune_thresholds(
    y_true: object,
    scores: object,
    grid: object = DEFAULT_GRID,
    fallback: float = 0.5,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    groups: object = None,
    shrinkage: float = 0.0,
) -> np.ndarray:
    """Per-label thresholds that maximise F1 on held-out data (e.g. the dev split), ``float [labels]``.

    Labels with fewer than ``min_positives`` held-out positives take a pooled threshold (their
    ``groups`` pooled, else all labels pooled, by micro-F1); ``fallback`` is the threshold when nothing
    pooled has a positive. See :func:`tune_thresholds_with_fallback`, which also says where each
    threshold comes from; ``shrinkage`` pulls a label's own threshold toward the pooled one.
    """
    return tune_thresholds_with_fallback(
        y_true, scores, grid, fallback, min_positives, groups, shrinkage
    ).thresholds


def describe_threshold_rule(rule: dict[str, Any] | None) -> str:
    """One sentence describing a stored threshold rule (``config.hiercon["threshold_rule"]``)."""
    if not rule:
        return "Thresholds: 0.5 for every label unless stated otherwise."
    if rule.get("fixed") is not None:
        return f"Thresholds: one fixed threshold, {rule['fixed']}, for every label (not tuned)."
    if rule.get("fallback") == "level":
        pooled = "its taxonomy level pooled (else all labels pooled)"
    else:
        pooled = "all labels pooled"
    tuned_on = f" on the `{rule['split']}` split" if rule.get("split") else ""
    sentence = (
        f"Thresholds: tuned per label for F1{tuned_on}; a label with fewer than {rule.get('min_positives')} "
        f"positives there takes the micro-F1-optimal threshold of {pooled}"
    )
    if rule.get("shrinkage"):
        sentence += (
            f"; an own threshold tuned on n positives is shrunk toward that pooled threshold with weight "
            f"{rule['shrinkage']:g} / (n + {rule['shrinkage']:g})"
        )
    counts = rule.get("labels_by_source") or {}
    if not counts:
        return sentence + "."
    own = counts.get(OWN, 0)
    return (
        f"{sentence} ({own} labels tuned on their own, {sum(counts.values()) - own} on a pooled threshold)."
    )
