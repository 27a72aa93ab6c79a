"""The benchmarks' ``--quick`` modes end to end (tiny models, tiny subsets), plus their shared pieces."""

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
import fashion_mnist_quality  # noqa: E402
import goemotions_quality  # noqa: E402
import speed  # noqa: E402
from goemotions_eval import LabelSpace  # noqa: E402


def test_pass_budget_matches_baseline_epochs_to_two_stage_passes():
    budget = common.PassBudget(stage1_epochs=2, views=2, stage2_epochs=3)
    assert budget.total == 7
    assert "7 encoder passes" in budget.describe()


def test_seeded_subset_is_deterministic_and_without_repeats():
    rows = list(range(100))
    first, second = common.seeded_subset(rows, 10, seed=3), common.seeded_subset(rows, 10, seed=3)
    assert first == second and len(set(first)) == 10
    assert common.seeded_subset(rows, 10, seed=4) != first
    assert common.seeded_subset(rows, None, seed=3) == rows


def test_read_idx_gz_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())
    np.testing.assert_array_equal(common.read_idx_gz(path), array)


def test_markdown_table_rounds_floats_and_marks_missing_values():
    table = common.markdown_table([{"a": 0.12345, "b": None}], ["a", "b"], digits=2)
    assert table.splitlines()[-1] == "| 0.12 | – |"


def test_lifted_scores_take_the_max_over_each_nodes_emotions(shipped_data):
    space = LabelSpace.from_data_dir(shipped_data / "goemotions")
    assert space.num_labels == 28 and "emotion:neutral" in space.leaf_labels
    scores = np.zeros((1, 28), dtype=np.float32)
    scores[0, space.leaf_labels.index("emotion:anger")] = 0.7
    scores[0, space.leaf_labels.index("emotion:annoyance")] = 0.4
    nodes = space.columns.lift(scores)
    taxonomy = space.taxonomy
    assert nodes[0, taxonomy.index("ekman:anger")] == pytest.approx(0.7)
    assert nodes[0, taxonomy.index("sentiment:negative")] == pytest.approx(0.7)
    assert nodes[0, taxonomy.index("sentiment:positive")] == 0.0


def _check_goemotions_result(result: dict, method: str) -> None:
    assert result["method"] == method and result["quick"]
    assert result["sizes"] == {"train": 32, "dev": 24, "test": 24}
    metrics = result["metrics"]["test"]
    for name in ("micro_f1", "macro_f1", "mAP", "hierarchical_f1", "consistency_rate", "ekman_macro_f1",
                 "sentiment_macro_f1"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert len(result["metrics"]["thresholds"]) == 28
    assert [point["epoch"] for point in result["dev_curve"]] == list(range(1, len(result["dev_curve"]) + 1))


def test_goemotions_quick_runs_write_results_and_a_table(shipped_data, tmp_path):
    data = ["--data-dir", str(shipped_data / "goemotions"), "--results-dir", str(tmp_path)]
    goemotions_quality.main(["--method", "bce", "--quick", *data])
    goemotions_quality.main(["--method", "himulcone", "--stage2", "probe", "--quick", *data])
    bce = json.loads((tmp_path / "goemotions_bce_lr0.0002_quick.json").read_text())
    himulcone = json.loads((tmp_path / "goemotions_himulcone_lr0.0002_t0.1_probe_quick.json").read_text())
    _check_goemotions_result(bce, "bce")
    _check_goemotions_result(himulcone, "himulcone")
    assert len(bce["dev_curve"]) == 3  # the baseline gets all 3 passes as epochs
    assert len(himulcone["dev_curve"]) == 1 and himulcone["timings_s"]["stage1"] >= 0.0
    assert len(himulcone["details"]["stage1_losses"]) > 0  # stage 1 ran (its time may round to 0 s)
    assert himulcone["details"]["loss"]["loss"] == "HiMulConELoss"
    assert himulcone["details"]["stage2"] == "probe" and himulcone["encoder_passes_per_example"] == 3
    assert np.isfinite(himulcone["details"]["stage1_losses"]).all()
    table = goemotions_quality.report(tmp_path, quick=True)
    assert table.count("\n| bce |") == 1 and table.count("\n| himulcone (probe) |") == 1
    assert (tmp_path / "goemotions_quick.md").read_text().strip() == table


def test_fashion_mnist_quick_run_scores_every_level(shared_data, tmp_path):
    fashion_mnist_quality.main(
        ["--method", "himulcone", "--quick", "--data-dir", str(shared_data / "fashion_mnist"),
         "--results-dir", str(tmp_path)]
    )
    result = json.loads((tmp_path / "fashion_mnist_himulcone_lr0.001_quick.json").read_text())
    metrics = result["metrics"]
    for level in ("class", "l2", "l1"):
        assert 0.0 <= metrics[f"{level}_accuracy"] <= 1.0
        assert 0.0 <= metrics[f"knn_{level}_accuracy"] <= 1.0
    # a coarser level can only be as hard as the finer one, since predictions are mapped up the tree
    assert metrics["l1_accuracy"] >= metrics["l2_accuracy"] >= metrics["class_accuracy"]


def test_speed_quick_measures_ratios_against_the_bce_step(shipped_data, tmp_path):
    speed.main(["--quick", "--data-dir", str(shipped_data / "goemotions"), "--results-dir", str(tmp_path)])
    result = json.loads((tmp_path / "speed_quick.json").read_text())
    assert result["step_time"]["ratio_to_bce"]["bce"] == 1.0
    assert all(value > 0 for value in result["step_time"]["median_step_s"].values())
    assert result["inference"]["ratio_hiercon_to_plain"] > 0
    assert "ratio_to_bce" in (tmp_path / "speed_quick.md").read_text()


def test_time_to_setfit_reads_the_first_dev_curve_point_above_setfit(tmp_path):
    def run(method, curve):
        return {"method": method, "quick": False, "learning_rate": 2e-4, "temperature": None,
                "metrics": {"dev_macro_f1": curve[-1][1]}, "timings_s": {"train": curve[-1][0]},
                "dev_curve": [{"train_seconds": s, "dev_macro_f1": f} for s, f in curve]}

    common.write_json("goemotions_setfit", run("setfit", [(900.0, 0.30)]), tmp_path)
    common.write_json("goemotions_supcon", run("supcon", [(100.0, 0.2), (200.0, 0.31), (300.0, 0.35)]), tmp_path)
    common.write_json("goemotions_bce", run("bce", [(100.0, 0.1), (200.0, 0.2)]), tmp_path)
    reach = speed.time_to_setfit(tmp_path)
    by_method = {row["method"]: row for row in reach["runs"]}
    assert reach["setfit_train_seconds"] == 900.0
    assert by_method["supcon"]["seconds_to_setfit"] == 200.0
    assert by_method["bce"]["seconds_to_setfit"] is None
