"""``LabelTaxonomy``: a validated DAG of label names, backed by networkx, and its graph queries."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from numbers import Integral
from typing import Any

import networkx as nx
import numpy as np

from hiercon.errors import TaxonomyError, UnknownLabelError
from hiercon.taxonomy.export import ExportMixin
from hiercon.taxonomy.label_sets import LabelSetsMixin
from hiercon.taxonomy.loaders import LoadersMixin
from hiercon.taxonomy.names import as_label_name, edge_names, suggest
from hiercon.taxonomy.tensors import TensorsMixin

Label = str | int


class LabelTaxonomy(LoadersMixin, ExportMixin, TensorsMixin, LabelSetsMixin):
    """A directed acyclic graph of label names (a tree, or a DAG where a label may have several parents).

    Build one with a loader (:meth:`from_edges`, :meth:`from_file`, :meth:`from_dict`, :meth:`from_paths`,
    :meth:`from_networkx`, :meth:`from_labels`, :meth:`from_class_label`) or directly from ``labels`` (their
    order fixes the label ids) and ``edges`` (``(parent, child)`` pairs). Everything is validated once, here:
    an empty taxonomy, bad names, duplicate labels, edges that name unknown labels, self-loops, duplicate
    edges and cycles all raise :class:`~hiercon.errors.TaxonomyError` naming the culprit.

    Depth is the longest path from a root (roots have depth 0); ``num_levels`` is the largest depth plus one.
    Label ids follow ``labels``; queries accept a label name or its integer id and answer with names.
    A taxonomy is immutable; its tensors are built on first use and cached.

    Args:
        labels: every label, once, in id order.
        edges: ``(parent, child)`` pairs over ``labels``.
        edge_origins: optional text per edge (e.g. ``"file.tsv:12"``) quoted in error messages.
    """

    def __init__(
        self,
        labels: Iterable[Any],
        edges: Iterable[tuple[Any, Any]] = (),
        *,
        edge_origins: Sequence[str] | None = None,
    ) -> None:
        self._labels: tuple[str, ...] = tuple(as_label_name(name, "in labels") for name in labels)
        if not self._labels:
            raise TaxonomyError("empty taxonomy: no labels were given")
        self._index: dict[str, int] = {}
        for position, name in enumerate(self._labels):
            if name in self._index:
                raise TaxonomyError(f"duplicate label {name!r} (positions {self._index[name]} and {position})")
            self._index[name] = position
        child_ids, parent_ids = self._check_edges(list(edges), edge_origins)
        order = np.lexsort((parent_ids, child_ids))
        self._edge_child = child_ids[order]
        self._edge_parent = parent_ids[order]
        self._graph = nx.DiGraph()
        self._graph.add_nodes_from(range(len(self._labels)))
        self._graph.add_edges_from(zip(self._edge_parent.tolist(), self._edge_child.tolist()))
        self._depth = self._longest_path_depths()

    def _check_edges(
        self, edges: list[tuple[Any, Any]], origins: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        seen: dict[tuple[int, int], int] = {}
        children = np.empty(len(edges), dtype=np.int64)
        parents = np.empty(len(edges), dtype=np.int64)
        for position, edge in enumerate(edges):
            where = origins[position] if origins is not None else f"edge #{position}"
            parent, child = edge_names(edge, where)
            if parent == child:
                raise TaxonomyError(f"self-loop on label {parent!r}: edge {parent} -> {child} ({where})")
            key = (self._edge_endpoint(parent, where), self._edge_endpoint(child, where))
            if key in seen:
                first = origins[seen[key]] if origins is not None else f"edge #{seen[key]}"
                raise TaxonomyError(f"duplicate edge {parent} -> {child} ({first} and {where})")
            seen[key] = position
            parents[position], children[position] = key
        return children, parents

    def _edge_endpoint(self, name: str, where: str) -> int:
        if name not in self._index:
            raise UnknownLabelError(
                f"edge names unknown label {name!r} ({where}){suggest(name, self._labels)}"
            )
        return self._index[name]

    def _longest_path_depths(self) -> np.ndarray:
        """Depth of every node (longest path from a root) from networkx's topological generations."""
        depth = np.zeros(len(self._labels), dtype=np.int64)
        try:
            for level, generation in enumerate(nx.topological_generations(self._graph)):
                depth[generation] = level
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(self._graph)
            names = [self._labels[parent] for parent, _ in cycle] + [self._labels[cycle[0][0]]]
            raise TaxonomyError(f"cycle in taxonomy: {' -> '.join(names)}") from None
        return depth

    # ------------------------------------------------------------------ identity and size

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and label in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __eq__(self, other: object) -> bool:
        """Equal when the labels (in the same id order) and the edges are the same."""
        if not isinstance(other, LabelTaxonomy):
            return NotImplemented
        return self._labels == other._labels and self._edge_key == other._edge_key

    def __hash__(self) -> int:
        return hash((self._labels, self._edge_key))

    def same_structure(self, other: LabelTaxonomy) -> bool:
        """True when both hold the same labels and the same parent -> child edges, whatever their id order."""
        return set(self._labels) == set(other._labels) and set(self.to_edges()) == set(other.to_edges())

    @cached_property
    def _edge_key(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self._edge_parent.tolist(), self._edge_child.tolist()))

    def __getstate__(self) -> dict[str, Any]:
        """The labels and edges without the cached tensors (rebuilt on first use): pickles, copies and
        ``datasets`` fingerprints of a taxonomy never hold a sparse tensor and do not depend on its use."""
        cached = {
            name
            for klass in type(self).__mro__
            for name, value in vars(klass).items()
            if isinstance(value, cached_property)
        }
        return {key: value for key, value in self.__dict__.items() if key not in cached}

    def __repr__(self) -> str:
        shared = sum(1 for parents in self._parent_lists if len(parents) > 1)
        dag = f", {shared} with several parents" if shared else ""
        return (
            f"LabelTaxonomy({self.num_labels} labels, {self.num_levels} levels, {len(self.roots)} roots, "
            f"{len(self.leaves)} leaves, {len(self._edge_child)} edges{dag})"
        )

    # ------------------------------------------------------------------ labels and ids

    @property
    def labels(self) -> list[str]:
        """All labels in id order (the order in which the input first named them)."""
        return list(self._labels)

    @property
    def num_labels(self) -> int:
        return len(self._labels)

    @property
    def num_levels(self) -> int:
        """Largest depth plus one (a flat taxonomy has one level)."""
        return int(self._depth.max()) + 1

    @property
    def label_to_id(self) -> dict[str, int]:
        return dict(self._index)

    @property
    def id_to_label(self) -> dict[int, str]:
        return dict(enumerate(self._labels))

    def index(self, label: Label) -> int:
        """The id of ``label`` (a name, or an id that is checked to be in range)."""
        return self._lookup(label)

    def _lookup(self, label: Label, where: str = "") -> int:
        context = f" {where}" if where else ""
        if isinstance(label, str):
            if label not in self._index:
                raise UnknownLabelError(f"unknown label {label!r}{context}{suggest(label, self._labels)}")
            return self._index[label]
        if isinstance(label, Integral) and not isinstance(label, bool):
            if not 0 <= int(label) < len(self._labels):
                raise UnknownLabelError(
                    f"label id {int(label)}{context} is out of range [0, {len(self._labels)})"
                )
            return int(label)
        raise UnknownLabelError(f"a label must be a name or an integer id, got {label!r}{context}")

    def label(self, label_id: int) -> str:
        """The name of the label with id ``label_id``."""
        return self._labels[self.index(label_id)]

    # ------------------------------------------------------------------ structure

    @cached_property
    def _parent_lists(self) -> list[list[int]]:
        return self._adjacency(self._edge_child, self._edge_parent)

    @cached_property
    def _child_lists(self) -> list[list[int]]:
        order = np.lexsort((self._edge_child, self._edge_parent))
        return self._adjacency(self._edge_parent[order], self._edge_child[order])

    def _adjacency(self, keys: np.ndarray, values: np.ndarray) -> list[list[int]]:
        lists: list[list[int]] = [[] for _ in self._labels]
        for key, value in zip(keys.tolist(), values.tolist()):
            lists[key].append(value)
        return lists

    def _names(self, ids: Iterable[int]) -> list[str]:
        return [self._labels[i] for i in ids]

    def _coarse_to_fine(self, ids: Iterable[int]) -> list[str]:
        return self._names(sorted(ids, key=lambda i: (int(self._depth[i]), i)))

    @property
    def roots(self) -> list[str]:
        """Labels without a parent, in id order."""
        return [name for name, parents in zip(self._labels, self._parent_lists) if not parents]

    @property
    def leaves(self) -> list[str]:
        """Labels without a child, in id order."""
        return [name for name, children in zip(self._labels, self._child_lists) if not children]

    def parents(self, label: Label) -> list[str]:
        """Direct parents of ``label`` in id order (several for a DAG node, none for a root)."""
        return self._names(self._parent_lists[self.index(label)])

    def children(self, label: Label) -> list[str]:
        """Direct children of ``label`` in id order."""
        return self._names(self._child_lists[self.index(label)])

    def ancestors(self, label: Label) -> list[str]:
        """All ancestors of ``label`` (not itself), coarse to fine: by depth, then id."""
        return self._coarse_to_fine(nx.ancestors(self._graph, self.index(label)))

    def descendants(self, label: Label) -> list[str]:
        """All descendants of ``label`` (not itself), coarse to fine: by depth, then id."""
        return self._coarse_to_fine(nx.descendants(self._graph, self.index(label)))

    def depth(self, label: Label) -> int:
        """Length of the longest path from a root to ``label`` (roots have depth 0)."""
        return int(self._depth[self.index(label)])

    def is_leaf(self, label: Label) -> bool:
        return not self._child_lists[self.index(label)]

    def is_root(self, label: Label) -> bool:
        return not self._parent_lists[self.index(label)]

    def level_labels(self, level: int) -> list[str]:
        """Labels at depth ``level`` in id order; negative levels count from the deepest (-1)."""
        return self._names(self._level_id_list(level))

    def _level_id_list(self, level: int) -> list[int]:
        if not -self.num_levels <= level < self.num_levels:
            raise TaxonomyError(f"level {level} is out of range: the taxonomy has {self.num_levels} levels")
        return np.flatnonzero(self._depth == level % self.num_levels).tolist()

    def paths_to_root(self, label: Label) -> list[list[str]]:
        """Every path between a root and ``label``, each listed root first (coarse to fine).

        A tree label has one path; a DAG label has one per way up. Paths are ordered by their parents' ids.
        """
        paths: list[list[int]] = []
        stack: list[list[int]] = [[self.index(label)]]
        while stack:
            upward = stack.pop()
            parents = self._parent_lists[upward[-1]]
            if not parents:
                paths.append(upward[::-1])
            stack.extend(upward + [parent] for parent in reversed(parents))
        return [self._names(path) for path in paths]

    def _up_distances(self, label_id: int) -> dict[int, int]:
        """Fewest edges from ``label_id`` up to each of its ancestors-or-self (breadth-first search)."""
        distances = {label_id: 0}
        queue = deque([label_id])
        while queue:
            node = queue.popleft()
            for parent in self._parent_lists[node]:
                if parent not in distances:
                    distances[parent] = distances[node] + 1
                    queue.append(parent)
        return distances

    def lowest_common_ancestor(self, a: Label, b: Label) -> str | None:
        """The deepest label that is an ancestor-or-self of both ``a`` and ``b``; None when they share none.

        Ties between equally deep common ancestors (possible in a DAG) go to the smaller id.
        """
        common = self._up_distances(self.index(a)).keys() & self._up_distances(self.index(b)).keys()
        if not common:
            return None
        return self._labels[max(common, key=lambda i: (int(self._depth[i]), -i))]

    def tree_distance(self, a: Label, b: Label) -> int:
        """Edges on the shortest path from ``a`` up to their lowest common ancestor and down to ``b``.

        Labels without a common ancestor are joined through a virtual root above all roots: the distance is
        then the fewest edges from each label to a root, plus one for each to reach the virtual root.
        """
        up_a, up_b = self._up_distances(self.index(a)), self._up_distances(self.index(b))
        lca = self.lowest_common_ancestor(a, b)
        if lca is not None:
            lca_id = self._index[lca]
            return up_a[lca_id] + up_b[lca_id]
        return sum(min(d for node, d in up.items() if not self._parent_lists[node]) + 1 for up in (up_a, up_b))
