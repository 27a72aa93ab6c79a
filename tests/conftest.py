"""Shared fixtures: paths to the shipped and shared data, small deterministic settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DATA = REPO_ROOT / "data"
SHARED_DATA = Path(os.environ.get("HIERCON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shipped_data() -> Path:
    """The GoEmotions files that ship with the repository (``data/goemotions``)."""
    return SHIPPED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (set HIERCON_SHARED_DATA to use it)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny BERT (2 layers, width 32) with its tokenizer; read-only for the tests."""
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny ViT (28x28 grey images) with its image processor; read-only for the tests."""
    from tiny_models import save_tiny_vit

    return save_tiny_vit(tmp_path_factory.mktemp("tiny_vit"))
