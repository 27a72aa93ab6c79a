"""Loaders that turn edge lists, files, dicts, paths, networkx graphs and ``ClassLabel`` features into taxonomies.

Label order: every loader numbers labels in the order the input first names them (reading an edge
``(parent, child)`` parent first, a nested dict top to bottom, a child-to-parent mapping key first).

Structural root: a label literally named ``root`` (argument ``root=``; ``None`` turns this off) that has no
parent is not a label but a marker for "the top"; it is dropped and its children become the roots.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx

from hiercon.errors import TaxonomyError
from hiercon.taxonomy.names import as_label_name, edge_names

T = TypeVar("T", bound="LoadersMixin")

SERIAL_KEY = "hiercon_taxonomy"
SERIAL_VERSION = 1
_HEADER_PARENTS = {"parent", "source", "head", "from", "parent_label"}
_HEADER_CHILDREN = {"child", "target", "tail", "to", "child_label"}
_ORIENTS = ("nested", "child_to_parent")


class LoadersMixin:
    """Class-method constructors of :class:`~hiercon.taxonomy.LabelTaxonomy`."""

    @classmethod
    def from_edges(
        cls: type[T],
        edges: Iterable[Sequence[Any]],
        root: str | None = "root",
        labels: Iterable[Any] | None = None,
        *,
        edge_origins: Sequence[str] | None = None,
    ) -> T:
        """Build from ``(parent, child)`` pairs.

        A label may have several parents (a DAG). ``labels`` optionally lists labels first (fixing their ids
        and adding labels that no edge names); the rest follow in order of first appearance. A duplicate
        edge, a self-loop or a cycle raises :class:`TaxonomyError`.
        """
        pairs = list(edges)
        origins = list(edge_origins) if edge_origins is not None else [f"edge #{i}" for i in range(len(pairs))]
        named = [edge_names(edge, where) for edge, where in zip(pairs, origins)]
        order: dict[str, None] = dict.fromkeys(as_label_name(name, "in labels") for name in labels or ())
        for parent, child in named:
            order.setdefault(parent)
            order.setdefault(child)
        names, named, origins = _drop_structural_root(list(order), named, origins, root)
        return cls(names, named, edge_origins=origins)

    @classmethod
    def from_labels(cls: type[T], names: Iterable[Any]) -> T:
        """A flat taxonomy: every label is a root and a leaf (one level)."""
        return cls(list(names), [])

    @classmethod
    def from_class_label(cls: type[T], feature: Any) -> T:
        """A flat taxonomy over the names of a ``datasets`` ``ClassLabel``, ``Sequence(ClassLabel)`` or
        ``List(ClassLabel)`` feature."""
        names = getattr(feature, "names", None)
        if names is None:
            names = getattr(getattr(feature, "feature", None), "names", None)
        if not names:
            raise TaxonomyError(
                f"from_class_label expects a datasets ClassLabel, Sequence(ClassLabel) or List(ClassLabel) "
                f"feature with names, got {feature!r}"
            )
        return cls.from_labels(names)

    @classmethod
    def from_networkx(cls: type[T], graph: nx.DiGraph, root: str | None = "root") -> T:
        """Build from a directed networkx graph whose edges point from parent to child.

        Labels follow the graph's node order. A ``MultiDiGraph`` with a repeated edge raises a duplicate-edge
        error; an undirected graph is refused because it cannot say which end is the parent.
        """
        if not isinstance(graph, nx.Graph) or not graph.is_directed():
            raise TaxonomyError(
                f"from_networkx needs a directed graph (parent -> child edges), got {type(graph).__name__}"
            )
        edges = [(parent, child) for parent, child, *_ in graph.edges]
        origins = [f"graph edge {parent!r} -> {child!r}" for parent, child in edges]
        named = [edge_names(edge, where) for edge, where in zip(edges, origins)]
        names = [as_label_name(node, "graph node") for node in graph.nodes]
        names, named, origins = _drop_structural_root(names, named, origins, root)
        return cls(names, named, edge_origins=origins)

    @classmethod
    def from_paths(
        cls: type[T],
        paths: Iterable[str],
        sep: str = "/",
        root: str | None = "root",
        level_names: Sequence[str] | None = None,
        *,
        path_origins: Sequence[str] | None = None,
    ) -> T:
        """Build from paths such as ``"sports/ball/football"`` (coarse to fine, split on ``sep``).

        Paths repeat their prefixes, so repeated edges are merged. A name identifies one label: the same name
        under two parents at the same depth is one label with two parents, while the same name at two
        different depths is ambiguous and raises :class:`TaxonomyError` (rename it, or pass ``level_names``
        to prefix every name with its level, e.g. ``["coarse", "fine"]`` gives ``"fine:ball"``).
        A single-segment path is a root; a list of plain names gives a flat taxonomy.
        """
        path_list = list(paths)
        origins = path_origins or [f"path #{i}" for i in range(len(path_list))]
        builder = _NestedNames(level_names)
        for path, where in zip(path_list, origins):
            if not isinstance(path, str):
                raise TaxonomyError(f"a path must be a string, got {path!r} ({where})")
            segments = [segment.strip() for segment in path.split(sep)]
            if root is not None and segments[0] == root:
                segments = segments[1:]
            if not segments or not all(segments):
                raise TaxonomyError(f"empty segment in path {path!r} ({where})")
            parent = None
            for depth, segment in enumerate(segments):
                parent = builder.add(segment, depth, parent, where)
        return cls(builder.names, builder.edges, edge_origins=builder.origins)

    @classmethod
    def from_dict(
        cls: type[T],
        data: Mapping[Any, Any],
        orient: str | None = None,
        root: str | None = "root",
        level_names: Sequence[str] | None = None,
    ) -> T:
        """Build from a dict in any of these forms:

        * the serialized form of :meth:`to_dict` (``{"hiercon_taxonomy": 1, "labels": [...], "edges": [...]}``),
          restored exactly, label order included;
        * a nested dict (``orient="nested"``), e.g. ``{"positive": {"joy": ["amusement", "love"]}}``, whose
          leaves are lists, dicts, single names or ``None``; the naming rule of :meth:`from_paths` applies
          (one name, one depth; ``level_names`` prefixes names by level);
        * a child-to-parent mapping (``orient="child_to_parent"``), e.g. ``{"amusement": "joy", "joy": None}``,
          where a value is a parent, a list of parents, or ``None`` for a root;
        * a wrapper ``{"tree": <nested dict>, "levels": [level names], ...}`` (other keys are ignored); its
          ``levels`` serve as ``level_names`` unless those are given.

        Without ``orient``, a mapping with at least one value that is a bare name and none that is a dict is
        read as child-to-parent; anything else as nested (so a dict of lists means parent -> children).
        """
        if not isinstance(data, Mapping):
            raise TaxonomyError(f"from_dict expects a mapping, got {type(data).__name__}")
        if SERIAL_KEY in data:
            return cls._from_serialized(data)
        if _is_wrapper(data):
            return cls.from_dict(data["tree"], orient, root, level_names or data["levels"])
        orient = orient or _detect_orient(data)
        if orient not in _ORIENTS:
            raise TaxonomyError(f"orient must be one of {_ORIENTS}, got {orient!r}")
        if orient == "child_to_parent":
            return cls._from_child_to_parent(data, root)
        if root is not None and list(data) == [root]:
            data = data[root] if isinstance(data[root], Mapping) else {item: None for item in data[root]}
        builder = _NestedNames(level_names)
        builder.walk(data, 0, None)
        return cls(builder.names, builder.edges, edge_origins=builder.origins)

    @classmethod
    def _from_child_to_parent(cls: type[T], data: Mapping[Any, Any], root: str | None) -> T:
        order: dict[str, None] = {}
        edges: list[tuple[str, str]] = []
        origins: list[str] = []
        for key, value in data.items():
            child = as_label_name(key, "mapping key")
            order.setdefault(child)
            parents = [] if value is None else [value] if isinstance(value, (str, Integral)) else value
            if not isinstance(parents, (list, tuple)):
                raise TaxonomyError(f"parent of {child!r} must be a name, a list of names or None, got {value!r}")
            for parent in parents:
                name = as_label_name(parent, f"parent of {child!r}")
                order.setdefault(name)
                edges.append((name, child))
                origins.append(f"entry {child!r}")
        names, edges, origins = _drop_structural_root(list(order), edges, origins, root)
        return cls(names, edges, edge_origins=origins)

    @classmethod
    def _from_serialized(cls: type[T], data: Mapping[str, Any]) -> T:
        if data.get(SERIAL_KEY) != SERIAL_VERSION:
            raise TaxonomyError(
                f"unsupported {SERIAL_KEY} version {data.get(SERIAL_KEY)!r} (this hiercon reads {SERIAL_VERSION})"
            )
        labels, edges = data.get("labels"), data.get("edges", [])
        if not isinstance(labels, list) or not isinstance(edges, list):
            raise TaxonomyError(f"a serialized taxonomy needs lists 'labels' and 'edges', got keys {list(data)}")
        return cls(labels, [tuple(edge) if isinstance(edge, list) else edge for edge in edges])

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        """Build from JSON text holding any :meth:`from_dict` form (e.g. the output of ``to_json()``)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise TaxonomyError(f"invalid JSON taxonomy at line {error.lineno}: {error.msg}") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(
        cls: type[T],
        path: str | Path,
        root: str | None = "root",
        format: str | None = None,
        sep: str = "/",
    ) -> T:
        """Load a taxonomy file.

        ``format`` is ``"json"`` (any :meth:`from_dict` form), ``"edges"`` (a TSV or CSV edge list, one
        ``parent<TAB>child`` per line, with or without a header such as ``parent<TAB>child``), or ``"paths"``
        (one ``sep``-separated path per line; plain names give a flat taxonomy). By default it is guessed:
        ``.json`` files are JSON; other files are edge lists when their first line holds a tab or a comma,
        and paths otherwise. Blank lines and lines starting with ``#`` are skipped. A malformed line raises
        :class:`TaxonomyError` with the file name and line number.
        """
        path = Path(path)
        if not path.is_file():
            raise TaxonomyError(f"taxonomy file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        format = format or _guess_format(path, text)
        if format == "json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise TaxonomyError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None
            return cls.from_dict(data, root=root)
        lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
        lines = [(number, line) for number, line in lines if line and not line.startswith("#")]
        if not lines:
            raise TaxonomyError(f"empty taxonomy: {path} holds no labels")
        if format == "paths":
            return cls.from_paths(
                [line for _, line in lines], sep=sep, root=root,
                path_origins=[f"{path}:{number}" for number, _ in lines],
            )
        if format == "edges":
            edges, origins = _read_edge_lines(path, lines)
            return cls.from_edges(edges, root=root, edge_origins=origins)
        raise TaxonomyError(f"format must be 'json', 'edges' or 'paths', got {format!r}")


class _NestedNames:
    """Collects labels and edges from nested forms, enforcing "one name, one depth"."""

    def __init__(self, level_names: Sequence[str] | None) -> None:
        self.level_names = list(level_names) if level_names is not None else None
        self.first_seen: dict[str, tuple[int, str]] = {}
        self.edge_origins: dict[tuple[str, str], str] = {}

    @property
    def names(self) -> list[str]:
        return list(self.first_seen)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return list(self.edge_origins)

    @property
    def origins(self) -> list[str]:
        return list(self.edge_origins.values())

    def add(self, raw_name: Any, depth: int, parent: str | None, where: str = "") -> str:
        name = as_label_name(raw_name, where)
        if self.level_names is not None:
            if depth >= len(self.level_names):
                raise TaxonomyError(
                    f"{name!r} sits at depth {depth} but only {len(self.level_names)} level names were given "
                    f"({self.level_names})"
                )
            name = f"{self.level_names[depth]}:{name}"
        place = f"under {parent!r}" if parent is not None else "at the top"
        if name in self.first_seen and self.first_seen[name][0] != depth:
            first_depth, first_place = self.first_seen[name]
            raise TaxonomyError(
                f"ambiguous label {name!r}: it appears at depth {first_depth} ({first_place}) and at depth "
                f"{depth} ({place}). In a nested dict or a list of paths a name is one label at one depth; "
                f"rename one, pass level_names=[...] to prefix names by level, or use from_edges"
            )
        self.first_seen.setdefault(name, (depth, place))
        if parent is not None:
            self.edge_origins.setdefault((parent, name), where or f"{name!r} {place}")
        return name

    def walk(self, node: Any, depth: int, parent: str | None) -> None:
        if node is None:
            return
        if isinstance(node, Mapping):
            for key, value in node.items():
                self.walk(value, depth + 1, self.add(key, depth, parent))
        elif isinstance(node, (list, tuple)):
            for item in node:
                if isinstance(item, Mapping):
                    self.walk(item, depth, parent)
                else:
                    self.add(item, depth, parent)
        elif isinstance(node, (str, Integral)):
            self.add(node, depth, parent)
        else:
            where = f"under {parent!r}" if parent is not None else "at the top"
            raise TaxonomyError(f"nested taxonomy values must be dicts, lists, names or None, got {node!r} {where}")


def _is_wrapper(data: Mapping[Any, Any]) -> bool:
    levels = data.get("levels")
    return (
        isinstance(data.get("tree"), Mapping)
        and isinstance(levels, list)
        and all(isinstance(level, str) for level in levels)
    )


def _detect_orient(data: Mapping[Any, Any]) -> str:
    values = list(data.values())
    has_name = any(isinstance(value, str) for value in values)
    has_dict = any(isinstance(value, Mapping) for value in values)
    return "child_to_parent" if has_name and not has_dict else "nested"


def _drop_structural_root(
    names: list[str], edges: list[tuple[str, str]], origins: list[str], root: str | None
) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """Remove the structural root label and its outgoing edges (its children become roots)."""
    if root is None or root not in names:
        return names, edges, origins
    for (parent, child), where in zip(edges, origins):
        if child == root == parent:
            raise TaxonomyError(f"self-loop on label {root!r}: edge {root} -> {root} ({where})")
        if child == root:
            raise TaxonomyError(
                f"the structural root {root!r} has a parent {parent!r} ({where}); "
                f"pass root=None to keep {root!r} as an ordinary label"
            )
    kept = [i for i, (parent, _) in enumerate(edges) if parent != root]
    return [name for name in names if name != root], [edges[i] for i in kept], [origins[i] for i in kept]


def _guess_format(path: Path, text: str) -> str:
    if path.suffix.lower() == ".json":
        return "json"
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return "edges" if ("\t" in first or "," in first) else "paths"


def _read_edge_lines(path: Path, lines: list[tuple[int, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    delimiter = "\t" if "\t" in lines[0][1] or path.suffix.lower() == ".tsv" else ","
    edges: list[tuple[str, str]] = []
    origins: list[str] = []
    for position, (number, line) in enumerate(lines):
        cells = next(csv.reader([line], delimiter=delimiter))
        while cells and not cells[-1].strip():
            cells.pop()
        cells = [cell.strip() for cell in cells]
        if len(cells) != 2 or not all(cells):
            shown = "<TAB>" if delimiter == "\t" else delimiter
            raise TaxonomyError(
                f"{path}:{number}: malformed line {line!r}: expected 'parent{shown}child' (2 non-empty fields)"
            )
        if position == 0 and cells[0].lower() in _HEADER_PARENTS and cells[1].lower() in _HEADER_CHILDREN:
            continue
        edges.append((cells[0], cells[1]))
        origins.append(f"{path}:{number}")
    return edges, origins
