"""Label names: validation and "did you mean" suggestions for unknown labels."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from numbers import Integral
from typing import Any

from hiercon.errors import TaxonomyError


def as_label_name(value: Any, where: str = "") -> str:
    """Return ``value`` as a label name: strings as they are, integers as their decimal text.

    Anything else (None, floats, empty or blank strings) raises a :class:`TaxonomyError` that names it.
    """
    if isinstance(value, str):
        if not value.strip():
            raise TaxonomyError(f"empty label name{_suffix(where)}")
        return value if type(value) is str else str(value)
    if isinstance(value, Integral) and not isinstance(value, bool):
        return str(int(value))
    raise TaxonomyError(f"label names must be strings or integers, got {value!r}{_suffix(where)}")


def suggest(name: str, known: Sequence[str]) -> str:
    """A " (did you mean 'x'?)" hint for an unknown ``name``, or an empty string when nothing is close.

    Prefers a known label that ends with ``:name`` or ``/name`` (a level-prefixed or path-style form of the
    same word), then the closest match by :func:`difflib.get_close_matches`.
    """
    text = str(name)
    qualified = [label for label in known if label.endswith((f":{text}", f"/{text}"))]
    matches = qualified[:1] or difflib.get_close_matches(text, list(known), n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _suffix(where: str) -> str:
    return f" ({where})" if where else ""


def edge_names(edge: Any, where: str = "") -> tuple[str, str]:
    """Return a ``(parent, child)`` pair of label names, or raise a :class:`TaxonomyError` naming ``edge``."""
    if not isinstance(edge, (str, bytes)):
        try:
            parent, child = edge
        except (TypeError, ValueError):
            pass
        else:
            return as_label_name(parent, where), as_label_name(child, where)
    raise TaxonomyError(f"an edge must be a (parent, child) pair, got {edge!r}{_suffix(where)}")
