"""Exports of a taxonomy: edge lists, the JSON-safe serialized dict, networkx graphs and a readable tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from hiercon.taxonomy.loaders import SERIAL_KEY, SERIAL_VERSION

_BRANCH, _LAST, _PIPE, _SPACE = "├── ", "└── ", "│   ", "    "


class ExportMixin:
    """Export methods of :class:`~hiercon.taxonomy.LabelTaxonomy`."""

    _labels: tuple[str, ...]
    _depth: np.ndarray
    _edge_child: np.ndarray
    _edge_parent: np.ndarray
    _parent_lists: list[list[int]]
    _child_lists: list[list[int]]

    def to_edges(self, root: str | None = None) -> list[tuple[str, str]]:
        """``(parent, child)`` name pairs, sorted by child id then parent id.

        With ``root`` (e.g. ``"root"``), an edge from that structural root to every root comes first in the
        child order, so labels without any edge survive ``from_edges(to_edges(root="root"))``; when the label
        order is topological (parents before children, as the nested and path loaders give), that round trip
        also keeps the label order.
        """
        names = self._labels
        pairs = zip(self._edge_parent.tolist(), self._edge_child.tolist())
        edges = [(names[parent], names[child]) for parent, child in pairs]
        if root is None:
            return edges
        rooted: list[tuple[str, str]] = []
        position = 0
        for child, parents in enumerate(self._parent_lists):
            if not parents:
                rooted.append((root, names[child]))
            rooted.extend(edges[position : position + len(parents)])
            position += len(parents)
        return rooted

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe ``{"hiercon_taxonomy": 1, "labels": [...], "edges": [[parent, child], ...]}``.

        :meth:`from_dict` restores exactly this taxonomy, label order included.
        """
        return {
            SERIAL_KEY: SERIAL_VERSION,
            "labels": list(self._labels),
            "edges": [list(edge) for edge in self.to_edges()],
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The :meth:`to_dict` form as JSON text; also written (UTF-8) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_networkx(self) -> nx.DiGraph:
        """A new ``DiGraph`` with parent -> child edges; nodes (in id order) carry ``id`` and ``depth``."""
        graph = nx.DiGraph()
        graph.add_nodes_from(
            (name, {"id": i, "depth": int(depth)}) for i, (name, depth) in enumerate(zip(self._labels, self._depth))
        )
        graph.add_edges_from(self.to_edges())
        return graph

    def tree_str(self, max_depth: int | None = None) -> str:
        """The taxonomy drawn as an indented tree, roots in id order.

        A label with several parents appears under each of them, marked ``[parents: a, b]``; its subtree is
        drawn under its first parent only (later copies say where). ``max_depth`` cuts deeper levels.
        """
        lines: list[str] = []
        drawn_under: dict[int, int | None] = {}
        roots = [i for i, parents in enumerate(self._parent_lists) if not parents]
        stack: list[tuple[int, int | None, str, str]] = [(root, None, "", "") for root in reversed(roots)]
        while stack:
            node, parent, prefix, branch = stack.pop()
            lines.append(prefix + branch + self._tree_line(node, drawn_under))
            if node in drawn_under or (max_depth is not None and self._depth[node] >= max_depth):
                continue
            drawn_under[node] = parent
            inner = prefix + (_PIPE if branch == _BRANCH else _SPACE if branch else "")
            children = self._child_lists[node]
            for position in range(len(children) - 1, -1, -1):
                last = position == len(children) - 1
                stack.append((children[position], node, inner, _LAST if last else _BRANCH))
        return "\n".join(lines)

    def _tree_line(self, node: int, drawn_under: dict[int, int | None]) -> str:
        text = self._labels[node]
        parents = self._parent_lists[node]
        if len(parents) > 1:
            text += f"  [parents: {', '.join(self._labels[p] for p in parents)}]"
        first_parent = drawn_under.get(node)
        if first_parent is not None and self._child_lists[node]:
            text += f"  (subtree shown under {self._labels[first_parent]!r})"
        return text

    def print_tree(self, max_depth: int | None = None) -> None:
        """Print :meth:`tree_str`."""
        print(self.tree_str(max_depth=max_depth))
