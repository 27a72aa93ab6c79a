"""Each plot writes a non-empty PNG and refuses input it cannot draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hiercon.errors import HierconError
from hiercon.metrics import per_label_report
from hiercon.plots import first_label_names, plot_embeddings_by_level, plot_per_label_f1, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EMOTIONS = ["joy", "love", "anger", "fear"]
SENTIMENT_OF_EMOTION = [0, 0, 1, 1]  # positive, positive, negative, negative


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000


@pytest.fixture
def clustered() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    emotion = rng.integers(0, 4, 160)
    centres = rng.normal(size=(4, 12)) * 3
    return centres[emotion] + rng.normal(size=(160, 12)), emotion


def test_embeddings_by_level(tmp_path: Path, clustered) -> None:
    points, emotion = clustered
    multi_hot = np.eye(4, dtype=int)[emotion]
    multi_hot[::7, 3] = 1  # some rows carry a second emotion; the first one sets the colour
    sentiment = np.array(["positive", "negative"])[np.array(SENTIMENT_OF_EMOTION)[emotion]].tolist()
    path = plot_embeddings_by_level(
        torch.tensor(points),
        [sentiment, multi_hot],
        ["sentiment", "emotion"],
        tmp_path / "plots" / "embeddings.png",
        label_names_per_level=[None, EMOTIONS],
    )
    assert_png(path)
    assert first_label_names(multi_hot[:1], EMOTIONS) == [EMOTIONS[emotion[0]]]
    assert first_label_names(np.zeros((1, 4), dtype=int)) == ["none"]


def test_embeddings_by_level_with_tsne(tmp_path: Path, clustered) -> None:
    points, emotion = clustered
    assert_png(
        plot_embeddings_by_level(
            points[:40], [emotion[:40]], ["emotion"], tmp_path / "t.png", method="tsne", tsne_max_iter=250
        )
    )


def test_per_label_f1(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth = (rng.random((50, 4)) < 0.4).astype(int)
    scores = np.clip(truth * 0.5 + rng.random((50, 4)) * 0.6, 0, 1)
    report = per_label_report(truth, scores, 0.5, EMOTIONS)
    assert_png(plot_per_label_f1(report, tmp_path / "f1.png"))


def test_training_curves(tmp_path: Path) -> None:
    history = [
        {"loss": 2.0 - 0.1 * step, "learning_rate": 1e-4, "epoch": step / 10, "step": step}
        for step in range(1, 11)
    ]
    history += [{"eval_loss": 1.5, "eval_micro_f1": 0.4, "eval_runtime": 1.0, "step": 5}]
    history += [{"eval_loss": 1.2, "eval_micro_f1": 0.55, "eval_runtime": 1.0, "step": 10}]
    history += [{"train_runtime": 12.0, "train_loss": 1.6, "step": 10}]
    assert_png(plot_training_curves(history, tmp_path / "curves.png"))


def test_plots_refuse_bad_input(tmp_path: Path) -> None:
    with pytest.raises(HierconError, match="2 label arrays for 1 level_names"):
        plot_embeddings_by_level(np.ones((4, 3)), [[0, 1, 0, 1], [0, 0, 1, 1]], ["a"], tmp_path / "x.png")
    with pytest.raises(HierconError, match="3 labels for 4 embeddings"):
        plot_embeddings_by_level(np.eye(4), [[0, 1, 0]], ["a"], tmp_path / "x.png")
    with pytest.raises(HierconError, match="empty"):
        plot_per_label_f1([], tmp_path / "x.png")
    with pytest.raises(HierconError, match="no loss"):
        plot_training_curves([{"epoch": 1.0}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_log_without_losses_or_evaluations_has_no_training_curves():
    from hiercon.plots import has_training_curves

    assert not has_training_curves([{"train_runtime": 1.5, "step": 0, "epoch": 0.0}])
    assert has_training_curves([{"loss": 0.7, "step": 2}])
