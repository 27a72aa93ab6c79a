"""The GradCache benchmark's ``--quick`` mode end to end (tiny BERT, small batches)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import cached  # noqa: E402


def test_plan_runs_the_plain_step_only_where_its_memory_fits() -> None:
    args = cached.parse_args(["--batch-sizes", "64", "1024", "--memory-limit-gib", "1"])
    plans = cached.plan(args, baseline_bytes=2**30 // 8)  # 128 MiB at batch 32
    assert plans[0] == {"batch_size": 64, "kinds": {"plain": None, "cached": 32}}
    assert plans[1] == {"batch_size": 1024, "kinds": {"cached": 32}}


@pytest.mark.slow
def test_quick_run_writes_the_table_and_the_targets(tmp_path) -> None:
    assert cached.main(["--quick", "--results-dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "cached_quick.json").read_text())
    steps = [(row["batch"], row["step"]) for row in payload["rows"]]
    assert steps == [
        (4, "plain (baseline)"),
        (8, "plain"),
        (8, "cached, mini-batch 4"),
        (16, "plain"),
        (16, "cached, mini-batch 4"),
    ]
    assert all(row["step_s"] > 0 and row["peak_mib"] >= 0 for row in payload["rows"])
    assert payload["targets"]["memory_at_largest_batch"]["batch"] == 16
    assert set(payload["targets"]["time_vs_plain"]["ratios"]) == {"8", "16"}  # JSON keys
    assert "| batch | step |" in (tmp_path / "cached_quick.md").read_text()
