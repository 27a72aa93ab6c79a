"""Evaluation outputs: ``metrics.json``, ``per_label.csv`` and ``per_label.md`` on disk, and the Markdown
table renderer."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from hiercon.errors import HierconError

PER_LABEL_COLUMNS = ("label", "precision", "recall", "f1", "support", "threshold", "ap")


def _json_number(key: str, value: object) -> object:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise HierconError(f"metric {key!r} is {value}; metrics.json only holds finite numbers")
    return value


def _columns(per_label: Sequence[Mapping[str, object]]) -> list[str]:
    extra = [key for row in per_label for key in row if key not in PER_LABEL_COLUMNS]
    present = [key for key in PER_LABEL_COLUMNS if any(key in row for row in per_label)]
    return present + list(dict.fromkeys(extra))


def format_cell(value: object) -> str:
    """A Markdown table cell: floats to 4 decimals (scientific below 1e-3), JSON for containers,
    blank for ``None``, pipes and newlines escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"
    if isinstance(value, (dict, list, tuple)):
        return "`" + json.dumps(value, sort_keys=True, default=str) + "`"
    return str(value).replace("|", "\\|").replace("\n", " ")


ALIGNMENTS = {"left": "---", "right": "---:", "center": ":---:"}


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], align: Sequence[str] | None = None
) -> str:
    """A Markdown table, every cell through :func:`format_cell` (the empty string when there are no rows).

    ``align`` gives each column's alignment, ``"left"`` (the default), ``"right"`` or ``"center"``.
    This is hiercon's one table renderer: evaluation files, the recipe's comparison, the model card
    and the benchmarks all use it.
    """
    if not rows:
        return ""
    alignments = list(align) if align is not None else ["left"] * len(header)
    if len(alignments) != len(header) or any(a not in ALIGNMENTS for a in alignments):
        raise HierconError(f"align needs one of {sorted(ALIGNMENTS)} per column ({len(header)}), got {alignments}")
    lines = [
        "| " + " | ".join(format_cell(cell) for cell in header) + " |",
        "|" + "|".join(ALIGNMENTS[a] for a in alignments) + "|",
    ]
    lines += ["| " + " | ".join(format_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def per_label_markdown(per_label: Sequence[Mapping[str, object]]) -> str:
    """A Markdown table of per-label rows (a missing AP left blank)."""
    columns = _columns(per_label)
    return markdown_table(columns, [[row.get(column) for column in columns] for row in per_label])


def write_evaluation(
    output_dir: str | Path, metrics: Mapping[str, object], per_label: Sequence[Mapping[str, object]]
) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_label.csv`` and ``per_label.md`` into ``output_dir``.

    Returns their paths under the keys ``"metrics"``, ``"per_label_csv"`` and ``"per_label_md"``.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": folder / "metrics.json",
        "per_label_csv": folder / "per_label.csv",
        "per_label_md": folder / "per_label.md",
    }
    clean = {str(key): _json_number(str(key), value) for key, value in metrics.items()}
    paths["metrics"].write_text(json.dumps(clean, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with paths["per_label_csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=_columns(per_label) if per_label else list(PER_LABEL_COLUMNS)
        )
        writer.writeheader()
        writer.writerows(per_label)
    paths["per_label_md"].write_text(per_label_markdown(per_label), encoding="utf-8")
    return paths
