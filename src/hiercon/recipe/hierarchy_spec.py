"""``data.taxonomy`` as a hierarchy learned from the data instead of a taxonomy file.

Besides a file path, ``data.taxonomy`` may name a method that builds the hierarchy above the labels:

- ``cooccurrence`` (or ``{cooccurrence: [k1, k2]}``): labels clustered by how often they occur
  together in the training examples (:func:`hiercon.taxonomy.agglomerative_taxonomy`);
- ``kmeans`` (or ``{kmeans: [k1, k2]}``): each label represented by the mean embedding of the
  training examples holding it (the untrained encoder), clustered by hierarchical k-means.

The cluster counts are one per level, finest first, strictly decreasing and each below the number of
labels; left out, one level of about ``sqrt(number of labels)`` clusters. A mapping (as written in a
recipe file or on the command line) is normalised into the string form ``"kmeans:8,3"``,
``"cooccurrence"``, which users may also write; ``HfArgumentParser`` types the field as a string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hiercon.errors import ConfigError
from hiercon.taxonomy.names import suggest

COOCCURRENCE = "cooccurrence"
KMEANS = "kmeans"
METHODS = (COOCCURRENCE, KMEANS)

#: A method name, optionally followed by ``:`` and its cluster counts.
_SPEC_PATTERN = re.compile(r"(?P<method>[A-Za-z_-]+)(?::(?P<counts>[^/\\]*))?")


@dataclass(frozen=True)
class HierarchySpec:
    """A data-driven hierarchy: the method and its cluster counts per level, finest first (empty: the default)."""

    method: str
    n_clusters: tuple[int, ...] = ()

    def __str__(self) -> str:
        counts = ",".join(str(count) for count in self.n_clusters)
        return f"{self.method}:{counts}" if counts else self.method

    def counts(self, num_labels: int) -> list[int]:
        """The cluster counts for ``num_labels`` labels: the configured ones, checked to be below the number
        of labels, else one level of ``round(sqrt(num_labels))`` clusters (at least 1, at most
        ``num_labels - 1``)."""
        if num_labels < 2:
            raise ConfigError(
                f"data.taxonomy {str(self)!r} needs at least two labels to group, the data has {num_labels}"
            )
        if not self.n_clusters:
            return [min(num_labels - 1, max(1, round(math.sqrt(num_labels))))]
        if self.n_clusters[0] >= num_labels:
            raise ConfigError(
                f"data.taxonomy {str(self)!r}: every cluster count must be below the number of labels "
                f"({num_labels}), got {self.n_clusters[0]}"
            )
        return list(self.n_clusters)


def spec_text(value: Any) -> Any:
    """``value`` with a mapping ``{method: counts}`` written as the string spec ``"method:k1,k2"``
    (anything else unchanged)."""
    if not isinstance(value, Mapping):
        return value
    if len(value) != 1:
        raise ConfigError(
            f"data.taxonomy as a mapping names one method ({', '.join(METHODS)}) with its cluster counts, "
            f"e.g. {{kmeans: [8, 3]}}; got {dict(value)!r}"
        )
    ((method, counts),) = value.items()
    if str(method).lower() not in METHODS:
        raise ConfigError(
            f"data.taxonomy names an unknown hierarchy method {method!r}; use one of {', '.join(METHODS)}"
            f"{suggest(str(method), METHODS)}"
        )
    if counts is None or counts == []:
        listed: list[Any] = []
    elif isinstance(counts, (list, tuple)):
        listed = list(counts)
    else:
        listed = [counts]
    spec = f"{method}:{','.join(str(count) for count in listed)}" if listed else str(method)
    parse_spec(spec)
    return spec


def parse_spec(value: str | None) -> HierarchySpec | None:
    """The data-driven hierarchy ``value`` names, or None when it is null or a file path.

    A value naming an existing file, or spelled as a path (a folder separator or a file suffix), is a
    file; any other word is a method, and an unknown one, or bad counts, are a :class:`ConfigError`.
    """
    if value is None or Path(value).expanduser().exists():
        return None
    match = _SPEC_PATTERN.fullmatch(value.strip())
    if match is None:
        return None
    method = match["method"].lower()
    if method not in METHODS:
        raise ConfigError(
            f"data.taxonomy {value!r} is neither an existing taxonomy file nor a hierarchy method "
            f"({' | '.join(METHODS)}, optionally with cluster counts, e.g. 'kmeans:8,3')"
            f"{suggest(method, METHODS)}"
        )
    return HierarchySpec(method, _counts(match["counts"], value))


def _counts(text: str | None, value: str) -> tuple[int, ...]:
    if text is None or not text.strip():
        return ()
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"data.taxonomy {value!r}: the cluster counts must be integers separated by commas, e.g. 'kmeans:8,3'"
        ) from None
    if any(count < 1 for count in counts):
        raise ConfigError(
            f"data.taxonomy {value!r}: every cluster count must be positive, got {list(counts)}"
        )
    if any(coarse >= fine for fine, coarse in zip(counts, counts[1:])):
        raise ConfigError(
            f"data.taxonomy {value!r}: the cluster counts must be strictly decreasing (finest level first), "
            f"got {list(counts)}"
        )
    return counts
