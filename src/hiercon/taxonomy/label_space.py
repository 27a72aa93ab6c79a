"""``LabelSpace``: the one owner of which label columns exist, in which order, and how they relate.

A label space is a view of a :class:`~hiercon.taxonomy.LabelTaxonomy` as the columns of a multi-hot
matrix:

- ``"nodes"``: every taxonomy node, in id order; a label set switches on its ancestors too;
- ``"leaves"``: the taxonomy's leaves only, in id order (the fine labels);
- a flat label list (:meth:`LabelSpace.flat`): a taxonomy without edges, where nodes and leaves agree.

Every layer asks the label space instead of re-deriving the structure: data loading and the trainers
turn any label format into its multi-hot (:meth:`multi_hot`), the losses read its paths and levels,
stage 2 and the metrics lift leaf scores to nodes (:meth:`lift`) and restrict node matrices to the
columns (:meth:`restrict`), inference closes and decodes. Inputs may be numpy arrays or torch tensors;
outputs follow the input's kind (numpy in, numpy out).

Accepted label formats (:meth:`multi_hot`), per row:

- **names**: a list of label names (``["joy", "love"]``) or one name (``"joy"``);
- **paths**: path strings ``"positive/joy/..."`` split on ``path_separator``; the last part names the label;
- **ids**: integer column ids, one per row (``[n]``), or a list of ids per row when rows differ in length;
- **multi-hot over the columns**, **over all nodes** or **over the leaves**: 0/1 rows of that width
  (a matrix, or a list of equal-length numeric rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from numbers import Integral
from typing import Any, Literal

import numpy as np
import torch

from hiercon.errors import LabelFormatError, UnknownLabelError
from hiercon.taxonomy.graph import LabelTaxonomy
from hiercon.taxonomy.names import suggest

Columns = Literal["nodes", "leaves"]
COLUMN_KINDS: tuple[str, ...] = ("nodes", "leaves")
LABEL_FORMATS: tuple[str, ...] = ("names", "ids", "multi_hot", "paths")


def is_numeric_array(values: Any) -> bool:
    """True for a numpy array or torch tensor of numbers (the multi-hot or id forms of labels)."""
    if torch.is_tensor(values):
        return not values.is_complex()
    return isinstance(values, np.ndarray) and values.dtype.kind in "biuf"


def check_multi_hot(
    values: Any,
    name: str = "labels",
    width: int | Sequence[int] | None = None,
    error: type[Exception] = LabelFormatError,
) -> None:
    """Refuse anything but a 2-D matrix of 0/1 values (of one of the ``width`` s when given).

    The one check of multi-hot label matrices, used by the label space, the losses, the trainers
    and the metrics; ``error`` is the exception type the caller's layer raises.
    """
    shape = tuple(values.shape)
    if len(shape) != 2:
        raise error(f"{name} must be multi-hot of shape [n, num_labels], got shape {shape}")
    widths = (width,) if isinstance(width, int) else tuple(width or ())
    if widths and shape[1] not in widths:
        expected = " or ".join(str(w) for w in widths)
        raise error(f"{name} has {shape[1]} columns but {expected} labels were expected")
    if torch.is_tensor(values):
        if values.is_complex():
            raise error(f"{name} must be real 0/1 values, got dtype {values.dtype}")
        bad = values.dtype != torch.bool and values.numel() > 0 and not bool(((values == 0) | (values == 1)).all())
    else:
        array = np.asarray(values)
        if array.dtype.kind not in "biuf":
            raise error(f"{name} must hold numbers 0 or 1, got dtype {array.dtype}")
        bad = array.size > 0 and not bool(np.isin(array, (0, 1)).all())
    if bad:
        raise error(f"{name} must be multi-hot with values 0 or 1 only (got other values)")


def _numeric_rows(labels: Any) -> torch.Tensor | None:
    """A list of numbers, or of equal-length numeric rows, as one tensor (``[n]`` ids or ``[n, w]``
    multi-hot); None for anything else (label names, paths, ragged id lists)."""
    if not isinstance(labels, (list, tuple)) or not labels:
        return None
    try:
        array = np.asarray([row.tolist() if torch.is_tensor(row) else row for row in labels])
    except ValueError:
        return None
    if array.dtype.kind not in "biuf" or array.ndim not in (1, 2) or (array.ndim == 1 and array.dtype.kind != "i"):
        return None
    return torch.as_tensor(array)


def _to_tensor(values: Any) -> tuple[torch.Tensor, bool]:
    """``values`` as a tensor, and whether the caller gave numpy (so results go back to numpy)."""
    if torch.is_tensor(values):
        return values, False
    return torch.as_tensor(np.asarray(values)), True


def _back(result: torch.Tensor, as_numpy: bool) -> Any:
    return result.detach().cpu().numpy() if as_numpy else result


class LabelSpace:
    """The label columns of a taxonomy (its ``"nodes"`` or its ``"leaves"``) and every conversion between
    label formats and the matrices over them.

    Args:
        taxonomy: the label taxonomy (a flat one for flat labels, see :meth:`flat`).
        columns: ``"nodes"`` (every node, ancestors closed) or ``"leaves"`` (the fine labels).
        path_separator: splits path strings (``"a/b/c"``) in :meth:`multi_hot`.

    Example::

        space = LabelSpace(taxonomy, "leaves")
        y = space.multi_hot([["joy"], ["anger", "fear"]])      # [2, num_leaves]
        space.lift(scores)                                        # leaf scores -> node scores
    """

    def __init__(self, taxonomy: LabelTaxonomy, columns: Columns = "nodes", path_separator: str = "/") -> None:
        if columns not in COLUMN_KINDS:
            raise LabelFormatError(f"label space columns must be one of {COLUMN_KINDS}, got {columns!r}")
        self.taxonomy = taxonomy
        self.columns: str = columns
        self.path_separator = path_separator

    # ------------------------------------------------------------------ construction

    @classmethod
    def flat(cls, labels: Iterable[Any]) -> LabelSpace:
        """A label space over flat labels (a taxonomy of roots only)."""
        return cls(LabelTaxonomy.from_labels(labels), "leaves")

    @classmethod
    def of(cls, taxonomy: LabelTaxonomy | LabelSpace | None, columns: Columns = "nodes") -> LabelSpace | None:
        """``taxonomy`` as a label space: a label space as it is, a taxonomy over ``columns``, None as None."""
        if taxonomy is None or isinstance(taxonomy, LabelSpace):
            return taxonomy
        return cls(taxonomy, columns)

    @classmethod
    def for_names(cls, names: Sequence[str], taxonomy: LabelTaxonomy | None) -> LabelSpace:
        """The label space whose columns are ``names``: the taxonomy's nodes or leaves, or flat labels."""
        names = list(names)
        if taxonomy is None:
            return cls.flat(names)
        for columns in COLUMN_KINDS:
            space = cls(taxonomy, columns)  # type: ignore[arg-type]
            if space.names == names:
                return space
        raise LabelFormatError(
            f"the labels {names[:5]}{'...' if len(names) > 5 else ''} are neither the taxonomy's "
            f"{taxonomy.num_labels} nodes nor its {len(taxonomy.leaves)} leaves in the taxonomy's order"
        )

    # ------------------------------------------------------------------ the columns

    @cached_property
    def node_ids(self) -> torch.Tensor:
        """LongTensor ``[C]``: the taxonomy id of each column."""
        if self.columns == "nodes":
            return torch.arange(self.taxonomy.num_labels)
        return self.taxonomy.leaf_ids.clone()

    @cached_property
    def names(self) -> list[str]:
        """The column names, in column order."""
        labels = self.taxonomy.labels
        return [labels[i] for i in self.node_ids.tolist()]

    @cached_property
    def _column_of(self) -> dict[str, int]:
        return {name: column for column, name in enumerate(self.names)}

    @property
    def num_labels(self) -> int:
        """The number of columns ``C``."""
        return len(self.names)

    @property
    def num_nodes(self) -> int:
        return self.taxonomy.num_labels

    @property
    def num_leaves(self) -> int:
        return int(self.taxonomy.leaf_ids.numel())

    @property
    def num_levels(self) -> int:
        return self.taxonomy.num_levels

    @property
    def is_flat(self) -> bool:
        """True when the taxonomy has no edges (every label is a root and a leaf)."""
        return self.taxonomy.num_levels == 1

    @property
    def closes_ancestors(self) -> bool:
        """True when a label set's ancestors are columns too (and so are switched on)."""
        return self.columns == "nodes" and not self.is_flat

    def __len__(self) -> int:
        return self.num_labels

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LabelSpace) and self.columns == other.columns and self.taxonomy == other.taxonomy
        )

    def __hash__(self) -> int:
        return hash((self.columns, self.taxonomy))

    def __repr__(self) -> str:
        kind = "flat" if self.is_flat else self.columns
        return f"LabelSpace({kind}, {self.num_labels} labels, {self.num_levels} levels)"

    def index(self, label: str | int, where: str = "") -> int:
        """The column of ``label`` (a name, or a column id checked to be in range)."""
        context = f" {where}" if where else ""
        if isinstance(label, str):
            column = self._column_of.get(label)
            if column is None:
                return self._unknown_name(label, context)
            return column
        if isinstance(label, Integral) and not isinstance(label, bool):
            if not 0 <= int(label) < self.num_labels:
                raise UnknownLabelError(f"label id {int(label)}{context} is out of range [0, {self.num_labels})")
            return int(label)
        raise UnknownLabelError(f"a label must be a name or an integer id, got {label!r}{context}")

    def _unknown_name(self, label: str, context: str) -> int:
        if label in self.taxonomy:
            raise UnknownLabelError(
                f"label {label!r}{context} is a taxonomy node but not one of the {self.columns} of this label "
                "space (label sets over the leaves name fine labels only)"
            )
        raise UnknownLabelError(f"unknown label {label!r}{context}{suggest(label, self.taxonomy.labels)}")

    # ------------------------------------------------------------------ any label format -> multi-hot

    def multi_hot(self, labels: Any, name: str = "labels") -> Any:
        """The multi-hot float32 ``[n, C]`` over the columns of ``labels`` in any accepted format.

        Numeric input (numpy or torch) is multi-hot over the columns, the nodes or the leaves, or
        ``[n]`` integer column ids; anything else is one label set per row (names, path strings or
        column ids). Rows are closed under ancestors in the ``"nodes"`` space. Numeric numpy input gives
        numpy; everything else gives a torch tensor.
        """
        if is_numeric_array(labels):
            values, as_numpy = _to_tensor(labels)
            return _back(self._numeric_multi_hot(values, name), as_numpy)
        rows = _numeric_rows(labels)
        if rows is not None:
            return self._numeric_multi_hot(rows, name)
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
            raise LabelFormatError(
                f"{name} must be label sets (a list of names, paths or ids per example) or a multi-hot matrix, "
                f"got {type(labels).__name__}"
            )
        return self.encode(labels, name)

    def encode(self, label_sets: Iterable[Any], name: str = "labels") -> torch.Tensor:
        """Multi-hot float32 ``[n, C]`` of label sets: per row a list of names, path strings or column ids,
        one of them, a 0/1 row of an accepted width, or ``None`` (no label)."""
        rows = [self._row_columns(row, position, name) for position, row in enumerate(label_sets)]
        matrix = torch.zeros(len(rows), self.num_labels)
        for position, columns in enumerate(rows):
            matrix[position, columns] = 1.0
        return self.close(matrix)

    def _row_columns(self, row: Any, position: int, name: str) -> list[int]:
        where = f"in row {position} of {name}"
        if row is None:
            return []
        if isinstance(row, (str, Integral)) and not isinstance(row, bool):
            row = [row]
        elif is_numeric_array(row) and getattr(row, "ndim", 0) == 0:
            row = [row.item()]
        elif is_numeric_array(row) and getattr(row, "ndim", 0) == 1 and np.asarray(row).dtype.kind in "bf":
            return self._multi_hot_row_columns(row, position, name)
        try:
            items = list(row)
        except TypeError:
            raise LabelFormatError(
                f"row {position} of {name} must be a list of label names, paths or ids, got {row!r}"
            ) from None
        if items and all(isinstance(item, (int, float, bool, np.number)) for item in items) and any(
            isinstance(item, (float, bool, np.floating, np.bool_)) for item in items
        ):
            return self._multi_hot_row_columns(items, position, name)
        return [self._item_column(item, where) for item in items]

    def _multi_hot_row_columns(self, row: Any, position: int, name: str) -> list[int]:
        values = torch.as_tensor(np.asarray(row, dtype=np.float32))[None, :]
        matrix = self._numeric_multi_hot(values, f"row {position} of {name}")
        return matrix[0].nonzero().flatten().tolist()

    def _item_column(self, item: Any, where: str) -> int:
        if torch.is_tensor(item) or isinstance(item, np.generic):
            item = item.item()
        is_path = isinstance(item, str) and bool(self.path_separator) and self.path_separator in item
        if is_path and item not in self.taxonomy:  # a label whose own name holds the separator is a name
            parts = [part for part in item.split(self.path_separator) if part]
            if not parts:
                raise UnknownLabelError(f"empty label path {item!r} {where}")
            item = parts[-1]
        return self.index(item, where)

    def _numeric_multi_hot(self, values: torch.Tensor, name: str) -> torch.Tensor:
        if values.dim() == 1:
            return self._from_column_ids(values, name)
        widths = sorted({self.num_labels, self.num_nodes, self.num_leaves})
        if values.dim() != 2 or values.shape[1] not in widths:
            raise LabelFormatError(
                f"{name} must be multi-hot over the {self.num_nodes} taxonomy nodes or its {self.num_leaves} "
                f"leaves, or [n] label ids, got shape {tuple(values.shape)}"
            )
        check_multi_hot(values, name)
        values = values.float()
        if values.shape[1] == self.num_labels:
            return self.close(values)
        return self.restrict(self.to_nodes(values))

    def _from_column_ids(self, ids: torch.Tensor, name: str) -> torch.Tensor:
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise LabelFormatError(f"{name} given as [n] label ids must be integers, got dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= self.num_labels)
        if bool(bad.any()):
            raise LabelFormatError(
                f"label id {int(ids[bad][0])} in {name} is outside the label space's ids 0..{self.num_labels - 1}"
            )
        matrix = torch.nn.functional.one_hot(ids.long(), self.num_labels).float()
        return self.close(matrix)

    # ------------------------------------------------------------------ structure: close, lift, restrict

    def _close_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        """Node-width multi-hot with every ancestor of a switched-on node switched on."""
        return self.taxonomy.close_nodes(nodes)

    def close(self, matrix: Any) -> Any:
        """Multi-hot over the columns with ancestors switched on (the identity on the leaves)."""
        values, as_numpy = _to_tensor(matrix)
        self._check_width(values, (self.num_labels,), "close")
        closed = self._close_nodes(values) if self.closes_ancestors else (values > 0).float()
        return _back(closed, as_numpy)

    def to_nodes(self, matrix: Any) -> Any:
        """Multi-hot over all taxonomy nodes, ancestors switched on, from a matrix over the columns, the
        nodes or the leaves."""
        values, as_numpy = _to_tensor(matrix)
        widths = (self.num_labels, self.num_nodes, self.num_leaves)
        self._check_width(values, widths, "to_nodes")
        if values.shape[1] != self.num_nodes:
            ids = self.node_ids if values.shape[1] == self.num_labels else self.taxonomy.leaf_ids
            values = self._scatter_to_nodes(values.float(), ids, fill=0.0)
        return _back(self._close_nodes(values), as_numpy)

    def lift(self, scores: Any) -> Any:
        """Scores over all taxonomy nodes from scores over the columns: each node takes the maximum over
        itself and its descendants among the columns (max-aggregation to coarser levels)."""
        values, as_numpy = _to_tensor(scores)
        self._check_width(values, (self.num_labels,), "lift")
        values = values if values.is_floating_point() else values.float()
        if self.columns == "leaves":
            values = self._scatter_to_nodes(values, self.node_ids, fill=float("-inf"))
        lifted = self.taxonomy._propagate(values, "amax") if not self.is_flat else values
        if self.columns == "leaves":
            lifted = torch.where(torch.isneginf(lifted), torch.zeros_like(lifted), lifted)
        return _back(lifted, as_numpy)

    def restrict(self, node_matrix: Any) -> Any:
        """The columns of this space taken from a matrix over all taxonomy nodes."""
        values, as_numpy = _to_tensor(node_matrix)
        self._check_width(values, (self.num_nodes,), "restrict")
        return _back(values[:, self.node_ids.to(values.device)], as_numpy)

    def consistent(self, scores: Any) -> Any:
        """Scores repaired so no column scores above an ancestor column (``min`` over ancestors, top-down);
        the identity on the leaves and on flat labels."""
        values, as_numpy = _to_tensor(scores)
        self._check_width(values, (self.num_labels,), "consistent")
        if not self.closes_ancestors:
            return _back(values, as_numpy)
        return _back(self.taxonomy.make_consistent(values), as_numpy)

    def consistent_predictions(
        self, scores: Any, thresholds: Any, repair_scores: bool = False
    ) -> tuple[Any, Any]:
        """Hierarchy-consistent decoding: ``(scores used, 0/1 predictions)`` over the columns.

        A column is predicted when its score reaches its threshold (one per column, or one for all),
        then every ancestor of a predicted column is switched on (:meth:`close`): no prediction holds a
        label without its ancestors, and a fine label is kept exactly when it clears its own threshold.
        With ``repair_scores`` the scores are first capped by their ancestors' (:meth:`consistent`), so
        a fine label is also dropped when an ancestor scores below it.
        """
        values, as_numpy = _to_tensor(scores)
        self._check_width(values, (self.num_labels,), "consistent_predictions")
        if repair_scores:
            values = self.consistent(values)
        limits = torch.as_tensor(np.asarray(thresholds), dtype=values.dtype, device=values.device)
        predictions = self.close((values >= limits).float())
        return _back(values, as_numpy), _back(predictions, as_numpy)

    def is_consistent(self, multi_hot: Any) -> Any:
        """Bool per row: no column is on without its ancestors (always true on the leaves)."""
        values, as_numpy = _to_tensor(multi_hot)
        self._check_width(values, (self.num_labels,), "is_consistent")
        if not self.closes_ancestors:
            return _back(torch.ones(values.shape[0], dtype=torch.bool), as_numpy)
        return _back(self.taxonomy.is_consistent(values.float()), as_numpy)

    def most_specific(self, matrix: Any) -> Any:
        """Multi-hot over the columns keeping only the labels with no switched-on descendant (the deepest
        labels of each row; the identity on the leaves and on flat labels)."""
        values, as_numpy = _to_tensor(matrix)
        self._check_width(values, (self.num_labels,), "most_specific")
        values = (values > 0).float()
        if not self.closes_ancestors or values.shape[0] == 0:
            return _back(values, as_numpy)
        below_or_self = torch.sparse.mm(self.taxonomy.descendant_rows(values.device), values.T).T
        return _back(values * (below_or_self == values).float(), as_numpy)

    def _scatter_to_nodes(self, values: torch.Tensor, ids: torch.Tensor, fill: float) -> torch.Tensor:
        nodes = values.new_full((values.shape[0], self.num_nodes), fill)
        return nodes.index_copy(1, ids.to(values.device), values)

    def _check_width(self, values: torch.Tensor, widths: Sequence[int], caller: str) -> None:
        if values.dim() != 2 or values.shape[1] not in widths:
            expected = " or ".join(f"[n, {w}]" for w in sorted(set(widths)))
            raise LabelFormatError(f"{caller}: expected a matrix of shape {expected}, got {tuple(values.shape)}")

    # ------------------------------------------------------------------ levels and paths

    def level_names(self, level: int) -> list[str]:
        """The taxonomy nodes at depth ``level`` (negative levels count from the deepest)."""
        return self.taxonomy.level_labels(level)

    def level(self, matrix: Any, level: int) -> Any:
        """A matrix over the columns seen at one taxonomy depth: each node of that depth takes the maximum
        over its descendants-or-self among the columns (for multi-hot rows: the level's multi-hot)."""
        values, as_numpy = _to_tensor(matrix)
        lifted = self.lift(values)
        return _back(lifted[:, self.taxonomy.level_ids(level).to(lifted.device)], as_numpy)

    @cached_property
    def level_occupancy(self) -> torch.Tensor:
        """``[L, num_levels]`` bool: node ``n`` stands at depth ``d`` (its own depth, and for a leaf every
        deeper one too, as the padding of :meth:`paths` does)."""
        depth = self.taxonomy.levels.long()
        is_leaf = torch.zeros(self.num_nodes, dtype=torch.bool)
        is_leaf[self.taxonomy.leaf_ids] = True
        positions = torch.arange(self.num_levels)
        at_own_depth = depth[:, None] == positions[None, :]
        return at_own_depth | (is_leaf[:, None] & (depth[:, None] < positions[None, :]))

    def paths(self, labels: Any) -> Any:
        """``[n, num_levels]`` node-id label paths, coarse to fine: the path of each row's deepest label
        (ties: the lowest id), padded by repeating that label; ``-1`` for a row without labels."""
        values, as_numpy = _to_tensor(labels)
        nodes = self.to_nodes(values) if values.dim() == 2 else self.to_nodes(self._from_column_ids(values, "labels"))
        deepest = self._deepest_nodes(nodes)
        node_paths = self.taxonomy.node_paths.to(nodes.device)
        picked = node_paths[deepest.clamp_min(0)]
        result = torch.where((deepest >= 0)[:, None], picked, torch.full_like(picked, -1))
        return _back(result, as_numpy)

    def _deepest_nodes(self, nodes: torch.Tensor) -> torch.Tensor:
        ids = torch.arange(self.num_nodes, device=nodes.device)
        key = (self.taxonomy.levels.to(nodes.device) + 1) * (self.num_nodes + 1) - ids
        scored = torch.where(nodes > 0, key, torch.zeros_like(key))
        best = scored.argmax(dim=1)
        return torch.where((nodes > 0).any(dim=1), best, torch.full_like(best, -1))

    # ------------------------------------------------------------------ similarity and decoding

    def similarity(self) -> torch.Tensor:
        """``[C, C]`` hierarchy similarity between the columns (see ``LabelTaxonomy.similarity_rows``)."""
        ids = self.node_ids
        return self.taxonomy.similarity_rows(ids)[:, ids]

    def decode(self, scores: Any, threshold: float | Sequence[float] | np.ndarray | torch.Tensor = 0.5) -> list[list[str]]:
        """The column names whose score reaches ``threshold`` (one value, or one per column), per row."""
        values, _ = _to_tensor(scores)
        self._check_width(values, (self.num_labels,), "decode")
        limits = torch.as_tensor(np.asarray(threshold, dtype=np.float32)).to(values.device)
        if limits.dim() == 1 and limits.numel() != self.num_labels:
            raise LabelFormatError(f"decode: {limits.numel()} thresholds given for {self.num_labels} labels")
        chosen = (values.float() >= limits).cpu().numpy()
        return [[self.names[i] for i in np.flatnonzero(row)] for row in chosen]
