"""Raw label names matched to taxonomy nodes that differ from them by a level prefix.

Data often names its labels plainly (``joy``) while the taxonomy file gives each node a level
prefix (``emotion:joy``), or the other way round (data ``emotion:joy``, taxonomy ``joy``). When
``data.label_template`` is not set, :func:`resolve_mapping` maps each raw label that is not a node
to the one node it equals once a prefix ending in one of :data:`SEPARATORS` is taken off either
side. A raw label that matches several nodes (``joy``: ``ekman:joy`` and ``emotion:joy``) is
refused with the ``data.label_template`` values that would map every label
(:func:`covering_templates`); a raw label that matches none is left to the unknown-label error of
the label reader.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from hiercon.errors import UnknownLabelError

logger = logging.getLogger(__name__)

#: Characters that end a level prefix (``emotion:joy``, ``positive/joy``, ``l1|joy``, ``a.joy``).
SEPARATORS = ":/|."
#: How many labels an error or log line lists before it says "and N more".
SHOWN = 5


@dataclass(frozen=True)
class LabelMapping:
    """Raw label names mapped to taxonomy nodes; names not in ``mapping`` stay as they are.

    Attributes:
        mapping: raw name -> node name, for the raw names that differ from their node.
        template: the ``data.label_template`` that gives the same mapping, when one does.
    """

    mapping: dict[str, str]
    template: str | None = None

    def __call__(self, raw: str) -> str:
        return self.mapping.get(raw, raw)

    def describe(self) -> str:
        """One line saying how raw labels become nodes."""
        pairs = ", ".join(f"{raw} -> {node}" for raw, node in sorted(self.mapping.items())[:SHOWN])
        more = f" and {len(self.mapping) - SHOWN} more" if len(self.mapping) > SHOWN else ""
        how = f"as data.label_template {self.template!r}" if self.template else "by their level prefixes"
        return f"data labels mapped to taxonomy nodes {how}: {pairs}{more}"


def tails(name: str) -> list[str]:
    """``name`` without each of its level prefixes, longest first (``a:b:joy`` -> ``b:joy``, ``joy``)."""
    return [name[i + 1 :] for i, char in enumerate(name[:-1]) if char in SEPARATORS]


def nodes_by_tail(nodes: Iterable[str]) -> dict[str, list[str]]:
    """Each tail of a node name (see :func:`tails`) -> the nodes that end with it after a prefix."""
    index: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        for tail in tails(node):
            index[tail].append(node)
    return index


def matches(raw: str, known: Collection[str], by_tail: dict[str, list[str]]) -> list[str]:
    """The nodes ``raw`` equals after a prefix is taken off the node (``emotion:joy`` for ``joy``)
    or off ``raw`` (``joy`` for ``emotion:joy``)."""
    found = set(by_tail.get(raw, ())) | {tail for tail in tails(raw) if tail in known}
    return sorted(found)


def templates_of(raw: str, nodes: Iterable[str]) -> set[str]:
    """The templates ``prefix{}suffix`` that turn ``raw`` into one of ``nodes``."""
    found = set()
    for node in nodes:
        start = node.find(raw)
        while start >= 0:
            template = node[:start] + "{}" + node[start + len(raw) :]
            if template != "{}":
                found.add(template)
            start = node.find(raw, start + 1)
    return found


def covering_templates(raw_labels: Collection[str], nodes: Collection[str]) -> list[str]:
    """The ``data.label_template`` values (other than ``"{}"``) that turn every raw label into a node."""
    if not raw_labels:
        return []
    known = set(nodes)
    first = min(raw_labels, key=len)
    candidates = templates_of(first, nodes)
    return sorted(t for t in candidates if all(t.replace("{}", raw) in known for raw in raw_labels))


def template_advice(raw_labels: Collection[str], nodes: Collection[str]) -> str:
    """A sentence naming the ``data.label_template`` that maps every raw label, or the choice of
    several, or an empty string when none does."""
    templates = covering_templates(raw_labels, nodes)
    if len(templates) == 1:
        return f'set data.label_template: "{templates[0]}" (it maps every label)'
    if templates:
        listed = " or ".join(f'"{template}"' for template in templates[:SHOWN])
        return f"set data.label_template to the one you mean: {listed} each map every label"
    return ""


def ambiguity_error(
    ambiguous: dict[str, list[str]], raw_labels: Collection[str], nodes: Collection[str]
) -> UnknownLabelError:
    """The error for raw labels that match several nodes, naming them and the templates that would work."""
    shown = "; ".join(f"{raw!r} -> {', '.join(found)}" for raw, found in sorted(ambiguous.items())[:SHOWN])
    more = f"; and {len(ambiguous) - SHOWN} more" if len(ambiguous) > SHOWN else ""
    advice = (
        template_advice(raw_labels, nodes)
        or "set data.label_template, or name the labels as the taxonomy does"
    )
    return UnknownLabelError(
        f"{len(ambiguous)} data labels match several taxonomy nodes once a level prefix is removed "
        f"({shown}{more}); {advice}"
    )


def resolve_mapping(raw_labels: Collection[str], nodes: Sequence[str]) -> LabelMapping | None:
    """How the raw labels of the data become taxonomy ``nodes`` when ``data.label_template`` is unset.

    None when every raw label is a node (nothing to map) or none differs by a prefix only; otherwise the
    mapping of each raw label that matches exactly one node, logged. Raises an
    :class:`~hiercon.errors.UnknownLabelError` when a raw label matches several nodes.
    """
    known = set(nodes)
    unknown = sorted(raw for raw in raw_labels if raw not in known)
    if not unknown:
        return None
    by_tail = nodes_by_tail(nodes)
    found = {raw: matches(raw, known, by_tail) for raw in unknown}
    ambiguous = {raw: nodes_ for raw, nodes_ in found.items() if len(nodes_) > 1}
    if ambiguous:
        raise ambiguity_error(ambiguous, raw_labels, nodes)
    mapping = {raw: nodes_[0] for raw, nodes_ in found.items() if nodes_}
    if not mapping:
        return None
    templates = covering_templates(raw_labels, nodes) if len(mapping) == len(raw_labels) else []
    template = next((t for t in templates if all(t.replace("{}", r) == n for r, n in mapping.items())), None)
    result = LabelMapping(mapping, template)
    logger.info("%s", result.describe())
    return result
