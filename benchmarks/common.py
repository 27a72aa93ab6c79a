"""Shared pieces of the benchmarks: data loading, subsets, timing, the encoder-pass budget and output.

Every benchmark script writes one JSON file per run into ``benchmarks/results/`` and prints a
markdown table; ``benchmarks/run_all.py`` collects them.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import platform
import random
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SCORES_DIR = RESULTS_DIR / "scores"
SHIPPED_GOEMOTIONS = REPO_ROOT / "data" / "goemotions"
SHARED_DATA = Path(os.environ.get("HIERCON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch, and keep torch to at most 2 threads (``HIERCON_BENCH_THREADS``).

    On a machine shared with other jobs one thread per process wastes less time waiting for a
    second thread to be scheduled.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    threads = int(os.environ.get("HIERCON_BENCH_THREADS", min(2, os.cpu_count() or 1)))
    torch.set_num_threads(max(1, min(2, threads)))


# --------------------------------------------------------------------------- data


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    """The rows of a gzip-compressed JSON-lines file."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_goemotions(data_dir: Path, split: str) -> list[dict[str, Any]]:
    """One split (``train``, ``dev``, ``test``) of GoEmotions: dicts with ``text`` and ``emotions``."""
    path = Path(data_dir) / f"{split}_hier.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"GoEmotions split {split!r} not found at {path}")
    return list(_read_split(path.resolve()))


@functools.lru_cache(maxsize=8)
def _read_split(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(read_jsonl_gz(path))


def seeded_subset(rows: Sequence[Any], size: int | None, seed: int) -> list[Any]:
    """``size`` rows drawn without replacement with ``seed`` (all rows, in order, when ``size`` is None)."""
    if size is None or size >= len(rows):
        return list(rows)
    picks = np.random.default_rng(seed).permutation(len(rows))[:size]
    return [rows[i] for i in sorted(picks)]


def read_idx_gz(path: Path) -> np.ndarray:
    """An IDX array (the MNIST file format) from a gzip file."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    num_dims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * num_dims).reshape(dims)


def load_fashion_mnist(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[n, 28, 28]`` (uint8) and class ids ``[n]`` of the ``train`` or ``test`` split."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx_gz(Path(data_dir) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx_gz(Path(data_dir) / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class PassBudget:
    """The number of encoder forward passes per training example, shared by every method.

    A two-stage method spends ``stage1_epochs * views`` passes in stage 1 and ``stage2_epochs`` in
    stage 2; a single-stage baseline gets the same total as epochs of plain fine-tuning.
    """

    stage1_epochs: int = 1
    views: int = 2
    stage2_epochs: int = 2

    @property
    def total(self) -> int:
        return self.stage1_epochs * self.views + self.stage2_epochs

    def describe(self) -> str:
        return (
            f"{self.total} encoder passes per example: stage 1 = {self.stage1_epochs} epoch(s) x "
            f"{self.views} views, stage 2 = {self.stage2_epochs} epoch(s); baselines = {self.total} epochs"
        )


# --------------------------------------------------------------------------- timing


class Stopwatch:
    """Wall time since creation, with named marks (``marks[name] = seconds``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def mark(self, name: str) -> float:
        self.marks[name] = round(self.elapsed(), 2)
        return self.marks[name]


@contextmanager
def timed(store: dict[str, float], name: str) -> Iterator[None]:
    """Record the wall time of the ``with`` block as ``store[name]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        store[name] = round(time.perf_counter() - start, 3)


# --------------------------------------------------------------------------- environment and output


def cpu_model_name() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in output.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Machine and library versions, recorded beside every result."""
    import datasets
    import sklearn
    import transformers

    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        import hiercon

        info["hiercon"] = hiercon.__version__
    except ImportError:
        info["hiercon"] = None
    return info


def write_json(name: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``payload`` to ``results_dir/name.json`` (pretty, key-sorted) and return the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_results(prefix: str, results_dir: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """All result JSON files whose name starts with ``prefix``, sorted by name."""
    return [json.loads(path.read_text()) for path in sorted(results_dir.glob(f"{prefix}*.json"))]


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 3) -> str:
    """A github markdown table of ``rows`` restricted to ``columns`` (floats rounded to ``digits``),
    rendered by hiercon's own table renderer."""
    from hiercon.metrics.report import markdown_table as render

    def cell(value: Any) -> Any:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return value

    return render(columns, [[cell(row.get(column)) for column in columns] for row in rows]).rstrip("\n")


def save_scores(name: str, **arrays: np.ndarray) -> Path:
    """Keep a run's raw scores (``scores/name.npz``) so that metrics can be recomputed without training."""
    SCORES_DIR.mkdir(parents=True, exist_ok=True)
    path = SCORES_DIR / f"{name}.npz"
    np.savez_compressed(path, **{key: np.asarray(value, dtype=np.float32) for key, value in arrays.items()})
    return path
