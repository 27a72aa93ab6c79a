"""The model card of a recipe run (README.md of the final folder)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def write_recipe_card(
    folder: Path,
    prepared: Any,
    stage1: Any,
    stage2: Any,
    results: dict[str, Any],
    per_label: list[dict[str, object]],
) -> None:
    """Write README.md into ``folder`` with :func:`hiercon.hub.save_model_card`."""
    try:
        from hiercon.hub import save_model_card
    except (ImportError, AttributeError) as error:
        logger.warning("no model card written: %s", error)
        return
    save_model_card(folder)
