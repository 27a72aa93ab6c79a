"""PNG plots of an evaluation: embeddings per taxonomy level, per-label F1, training curves.

Plots are drawn with matplotlib's non-interactive Agg backend, so they work on headless machines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from hiercon.errors import HierconError  # noqa: E402
from hiercon.metrics.inputs import ArrayLike, as_matrix, to_numpy  # noqa: E402

MAX_LEGEND_ENTRIES = 12


def _save(figure: plt.Figure, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return target


def project_2d(
    embeddings: ArrayLike, method: str = "pca", seed: int = 0, tsne_max_iter: int = 1000
) -> np.ndarray:
    """A 2-D projection of ``[n, d]`` embeddings with PCA (or t-SNE with ``method="tsne"``, run for
    ``tsne_max_iter`` iterations, at least 250)."""
    points = as_matrix(embeddings, "embeddings")
    if points.shape[0] < 2:
        raise HierconError("a 2-D projection needs at least 2 embeddings")
    if method == "pca":
        projected = PCA(n_components=min(2, points.shape[1]), random_state=seed).fit_transform(points)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(1.0, (points.shape[0] - 1) / 3))
        projected = TSNE(
            n_components=2,
            perplexity=perplexity,
            random_state=seed,
            init="pca",
            max_iter=max(250, tsne_max_iter),
        ).fit_transform(points)
    else:
        raise HierconError(f"method must be 'pca' or 'tsne', got {method!r}")
    return projected if projected.shape[1] == 2 else np.pad(projected, ((0, 0), (0, 1)))


def first_label_names(labels: ArrayLike | Sequence[Any], names: Sequence[str] | None = None) -> list[str]:
    """One display label per example: the class of 1-D ids, or the first switched-on column of a
    multi-hot row (``"none"`` for an empty row); mapped through ``names`` when given."""
    values = labels if isinstance(labels, (list, tuple)) and labels and isinstance(labels[0], str) else None
    if values is not None:
        return list(values)
    array = to_numpy(labels, "labels")
    if array.ndim == 2:
        ids = [int(np.flatnonzero(row)[0]) if row.any() else -1 for row in array]
    elif array.ndim == 1:
        ids = [int(value) for value in array]
    else:
        raise HierconError(f"labels must be 1-D ids or a 2-D multi-hot matrix, got shape {array.shape}")
    return ["none" if i < 0 else (names[i] if names is not None else str(i)) for i in ids]


def plot_embeddings_by_level(
    embeddings: ArrayLike,
    labels_per_level: Sequence[ArrayLike | Sequence[str]],
    level_names: Sequence[str],
    path: str | Path,
    method: str = "pca",
    label_names_per_level: Sequence[Sequence[str] | None] | None = None,
    tsne_max_iter: int = 1000,
) -> Path:
    """Scatter the 2-D projection of ``embeddings`` once per taxonomy level, coloured by the label
    at that level (the first label of a multi-label row). ``labels_per_level[i]`` holds class ids,
    a multi-hot matrix or label strings; ``label_names_per_level[i]`` maps ids to names.
    ``method`` is ``"pca"`` or ``"tsne"``."""
    if len(labels_per_level) != len(level_names) or not level_names:
        raise HierconError(f"{len(labels_per_level)} label arrays for {len(level_names)} level_names")
    points = project_2d(embeddings, method, tsne_max_iter=tsne_max_iter)
    figure, axes = plt.subplots(1, len(level_names), figsize=(5 * len(level_names), 4.5), squeeze=False)
    for column, (level, labels) in enumerate(zip(level_names, labels_per_level)):
        names = label_names_per_level[column] if label_names_per_level is not None else None
        display = first_label_names(labels, names)
        if len(display) != points.shape[0]:
            raise HierconError(f"level {level!r} has {len(display)} labels for {points.shape[0]} embeddings")
        _scatter_level(axes[0, column], points, display, level)
    figure.suptitle(f"Embeddings ({method.upper()}) by taxonomy level")
    return _save(figure, path)


def _scatter_level(axis: plt.Axes, points: np.ndarray, display: list[str], level: str) -> None:
    classes = sorted(set(display), key=display.index)
    palette = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, name in enumerate(classes):
        mask = np.array([label == name for label in display])
        colour = palette(index % palette.N)
        axis.scatter(points[mask, 0], points[mask, 1], s=10, alpha=0.8, color=colour, label=name)
    axis.set_title(level)
    axis.set_xticks([])
    axis.set_yticks([])
    if len(classes) <= MAX_LEGEND_ENTRIES:
        axis.legend(fontsize="x-small", markerscale=1.5, loc="best")


def plot_per_label_f1(per_label: Sequence[Mapping[str, Any]], path: str | Path, metric: str = "f1") -> Path:
    """Horizontal bars of each label's ``metric`` (rows of :func:`hiercon.metrics.per_label_report`),
    sorted with the best label on top."""
    if not per_label:
        raise HierconError("per_label is empty: nothing to plot")
    missing = [row.get("label", "?") for row in per_label if metric not in row or "label" not in row]
    if missing:
        raise HierconError(f"per_label rows without 'label' or {metric!r}: {missing[:5]}")
    rows = sorted(per_label, key=lambda row: float(row[metric]))
    values = [float(row[metric]) for row in rows]
    figure, axis = plt.subplots(figsize=(7, 1.5 + 0.28 * len(rows)))
    axis.barh([str(row["label"]) for row in rows], values, color="tab:blue")
    for position, value in enumerate(values):
        axis.text(value + 0.01, position, f"{value:.2f}", va="center", fontsize="x-small")
    axis.set_xlim(0, 1.08)
    axis.set_xlabel(metric)
    axis.set_title(f"Per-label {metric}")
    return _save(figure, path)


def training_curve_series(
    log_history: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """(losses, evaluation metrics) of ``trainer.state.log_history``: each a name -> [(step, value)]."""
    losses: dict[str, list[tuple[float, float]]] = {}
    metrics: dict[str, list[tuple[float, float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        for key, value in entry.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key in ("step", "epoch"):
                continue
            if key in ("loss", "eval_loss") or (key.endswith("loss") and not key.startswith("eval_")):
                losses.setdefault(key, []).append((step, float(value)))
            elif key.startswith("eval_") and not key.endswith(("_runtime", "_per_second")):
                metrics.setdefault(key, []).append((step, float(value)))
    return losses, metrics


def has_training_curves(log_history: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the log holds a loss or ``eval_*`` value to plot (a head fitted without gradient steps
    logs none)."""
    return any(training_curve_series(log_history))


def plot_training_curves(log_history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Training loss and every logged ``eval_*`` number against the global step, from
    ``trainer.state.log_history``: losses on the left panel, other evaluation metrics on the right."""
    losses, metrics = training_curve_series(log_history)
    if not losses and not metrics:
        raise HierconError("log_history holds no loss or eval_* values with a step")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    _draw_series(axes[0], losses, "loss")
    _draw_series(axes[1], metrics, "evaluation metrics")
    return _save(figure, path)


def _draw_series(axis: plt.Axes, series: Mapping[str, list[tuple[float, float]]], title: str) -> None:
    for name, points in series.items():
        steps, values = zip(*points)
        axis.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=name)
    axis.set_title(title)
    axis.set_xlabel("step")
    if series:
        axis.legend(fontsize="x-small")
    else:
        axis.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=axis.transAxes)
