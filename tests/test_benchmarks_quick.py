"""The benchmarks' ``--quick`` modes end to end (tiny models, tiny subsets), their tables on hand-made
records, and their shared pieces."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
import himulcone_collapse  # noqa: E402
import prepare_fashion_mnist  # noqa: E402
import recipe_runs  # noqa: E402
import speed  # noqa: E402


def test_seeded_subset_is_deterministic_and_without_repeats():
    rows = list(range(100))
    first, second = common.seeded_subset(rows, 10, seed=3), common.seeded_subset(rows, 10, seed=3)
    assert first == second and len(set(first)) == 10
    assert common.seeded_subset(rows, 10, seed=4) != first
    assert common.seeded_subset(rows, None, seed=3) == rows


def test_read_idx_gz_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx_gz(tmp_path / "x.gz", array)
    np.testing.assert_array_equal(common.read_idx_gz(tmp_path / "x.gz"), array)


def test_markdown_table_rounds_floats_and_marks_missing_values():
    table = common.markdown_table([{"a": 0.12345, "b": None}], ["a", "b"], digits=2)
    assert table.splitlines()[-1] == "| 0.12 | – |"


def test_lifted_scores_take_the_max_over_each_nodes_emotions(shipped_data):
    emotions = common.goemotions_label_space(shipped_data / "goemotions")
    assert emotions.num_labels == 28 and "emotion:neutral" in emotions.names
    targets = emotions.encode(common.emotion_label_sets([{"emotions": ["anger", "joy"]}, {"emotions": ["neutral"]}]))
    assert targets.sum(dim=1).tolist() == [2.0, 1.0]
    scores = np.zeros((1, 28), dtype=np.float32)
    scores[0, emotions.index("emotion:anger")] = 0.7
    scores[0, emotions.index("emotion:annoyance")] = 0.4
    nodes = emotions.lift(scores)
    taxonomy = emotions.taxonomy
    assert nodes[0, taxonomy.index("ekman:anger")] == pytest.approx(0.7)
    assert nodes[0, taxonomy.index("sentiment:negative")] == pytest.approx(0.7)
    assert nodes[0, taxonomy.index("sentiment:positive")] == 0.0


def test_speed_quick_measures_ratios_against_the_bce_step(shipped_data, tmp_path):
    speed.main(["--quick", "--data-dir", str(shipped_data / "goemotions"), "--results-dir", str(tmp_path)])
    result = json.loads((tmp_path / "speed_quick.json").read_text())
    assert result["step_time"]["ratio_to_bce"]["bce"] == 1.0
    assert all(value > 0 for value in result["step_time"]["median_step_s"].values())
    assert result["inference"]["ratio_hiercon_to_plain"] > 0
    assert "ratio_to_bce" in (tmp_path / "speed_quick.md").read_text()


def _write_record(folder: Path, name: str, seed: int, seconds: float, scale: float, overrides=()) -> None:
    metrics = {"macro_f1": 0.2 * scale, "micro_f1": 0.4 * scale, "map": 0.3 * scale}
    for level, value in (("sentiment", 0.6), ("ekman", 0.5), ("emotion", 0.2)):
        metrics[f"level_{level}/macro_f1"] = value * scale
        metrics[f"level_{level}/micro_f1"] = value
    for depth, value in enumerate((0.55, 0.5, 0.4)):
        metrics[f"stage1_level_{depth}_micro_f1"] = value * scale
        metrics[f"stage1_level_{depth}_macro_f1"] = value
    metrics["stage1_mean_pairwise_cosine"] = 0.7
    record = {"name": name, "seed": seed, "seconds": seconds, "training_seconds": seconds / 2,
              "overrides": list(overrides), "command": "hiercon train config.yaml", "metrics": metrics}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_seed{seed}.json").write_text(json.dumps(record))


def test_recipe_runs_table_shows_mean_and_std_over_seeds_and_the_level_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe_runs, "RESULTS", tmp_path)
    config = Path("benchmarks/configs/goemotions_losses.yaml")
    _write_record(tmp_path / "goemotions_losses", "supcon", 1, 100.0, 1.0)
    _write_record(tmp_path / "goemotions_losses", "supcon", 2, 300.0, 1.5)
    assert [record["seed"] for record in recipe_runs.read_records(config)] == [1, 2]
    lines = recipe_runs.table(config).strip().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == [
        "run", "seeds", "macro-F1 (fine labels)", "micro-F1", "mAP", "sentiment macro-F1", "ekman macro-F1",
        "kNN sentiment", "kNN ekman", "kNN emotion", "mean cosine", "training (s)", "run (s)",
    ]
    assert len(lines) == 3  # header, rule, one row for the two seeds of one variant
    row = dict(zip(header, (cell.strip() for cell in lines[2].strip("|").split("|"))))
    assert row["run"] == "supcon" and row["seeds"] == "1, 2"
    assert row["macro-F1 (fine labels)"] == "0.250 ± 0.071"  # mean and sample std of 0.2 and 0.3
    assert row["sentiment macro-F1"] == "0.750 ± 0.212"
    assert row["kNN emotion"] == "0.500 ± 0.141"
    assert row["mean cosine"] == "0.700 ± 0.000"
    assert row["training (s)"] == "100" and row["run (s)"] == "200"


def test_himulcone_collapse_fashion_runs_are_recipe_runs_with_loss_options(tmp_path, monkeypatch):
    from hiercon.recipe.config import load_recipe

    options = {"hce_floor": "pair", "constrained_pairs": "all"}
    overrides = himulcone_collapse.fashion_overrides(options)
    data = tmp_path / "fashion_mnist"  # what benchmarks/prepare_fashion_mnist.py writes
    data.mkdir()
    arguments = load_recipe(himulcone_collapse.FASHION_CONFIG, [*overrides, "--data.dataset", str(data)])
    assert arguments.stage1.loss == "himulcone" and arguments.stage1.loss_kwargs == options
    monkeypatch.setattr(recipe_runs, "RESULTS", tmp_path)
    folder = tmp_path / "fashion_mnist_losses"
    _write_record(folder, "himulcone_before", 0, 50.0, 1.0, overrides)
    _write_record(folder, "supcon", 0, 50.0, 1.0, ["--stage1.loss", "supcon"])
    table = himulcone_collapse.fashion_recipe_table()
    assert "| himulcone_before |" in table and "| supcon |" not in table


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_prepare_fashion_mnist_builds_the_hub_layout_from_idx_files(tmp_path):
    images = np.arange(3 * 5 * 5, dtype=np.uint8).reshape(3, 5, 5)
    _write_idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx_gz(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 9, 3]))
    split = prepare_fashion_mnist.split_dataset(tmp_path, "test")
    assert split.num_rows == 3 and set(split.column_names) == {"image", "label"}
    assert split.features["label"].names == list(prepare_fashion_mnist.CLASS_NAMES)
    assert split["label"] == [0, 9, 3]
    np.testing.assert_array_equal(np.asarray(split[1]["image"]), images[1])
