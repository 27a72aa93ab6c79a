"""Label sets against a taxonomy: multi-hot encoding with ancestor closure, decoding, level views and
score consistency (no child above its parent), all vectorised level by level."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from hiercon.errors import HierconError, UnknownLabelError

LabelSet = Iterable[str | int] | str | int | None


class LabelSetsMixin:
    """Encoding, decoding and consistency methods of :class:`~hiercon.taxonomy.LabelTaxonomy`."""

    _labels: tuple[str, ...]
    _depth: np.ndarray
    _edge_child: np.ndarray
    _edge_parent: np.ndarray
    _ancestor_float: sp.csr_matrix
    _lookup: Callable[..., int]
    level_ids: Callable[[int], torch.Tensor]

    # ------------------------------------------------------------------ label sets -> multi-hot

    def encode(self, label_sets: Iterable[LabelSet], closure: bool = True) -> torch.Tensor:
        """Multi-hot float tensor ``[n, L]`` over all labels, one row per label set.

        Each label set is an iterable of names or ids, a single name or id (a one-label set, handy for
        single-label data) or ``None`` (empty). With ``closure`` (the default) every ancestor of a given
        label is switched on too. An unknown label raises :class:`UnknownLabelError` naming it, its row and
        the closest known label.
        """
        direct = torch.from_numpy((self._direct_csr(label_sets).toarray() > 0).astype(np.float32))
        return self.close_nodes(direct) if closure else direct

    def close_nodes(self, multi_hot: torch.Tensor) -> torch.Tensor:
        """Float ``[n, L]`` multi-hot with every ancestor of a switched-on label switched on: one sparse
        product with the ancestor matrix (the closure every label space and metric uses)."""
        if multi_hot.shape[0] == 0 or self._edge_child.size == 0:
            return (multi_hot > 0).float()
        reached = torch.sparse.mm(self.descendant_rows(multi_hot.device), multi_hot.float().T).T
        return (reached > 0).float()

    def descendant_rows(self, device: torch.device) -> torch.Tensor:
        """Sparse ``[L, L]`` on ``device``: row ``a`` marks the descendants-or-self of ``a``."""
        cache = self._descendants_by_device
        if device not in cache:
            cache[device] = self.ancestor_matrix_sparse.t().coalesce().to(device)
        return cache[device]

    @cached_property
    def _descendants_by_device(self) -> dict[torch.device, torch.Tensor]:
        return {}

    def closure(self, label_sets: Iterable[LabelSet]) -> list[list[str]]:
        """Each label set with all ancestors added, as names in id order."""
        return self._names_per_row(self.encode(label_sets).numpy() > 0)

    def encode_level(self, label_sets: Iterable[LabelSet], level: int) -> torch.Tensor:
        """Multi-hot ``[n, len(level_labels(level))]`` of the closed label sets restricted to one level.

        Columns follow :meth:`level_labels`; a label set whose labels all sit above ``level`` gives a zero row.
        """
        return self.encode(label_sets)[:, self.level_ids(level)]

    def _direct_csr(self, label_sets: Iterable[LabelSet]) -> sp.csr_matrix:
        rows: list[int] = []
        columns: list[int] = []
        count = 0
        for row, label_set in enumerate(label_sets):
            ids = self._label_set_ids(label_set, row)
            rows.extend([row] * len(ids))
            columns.extend(ids)
            count = row + 1
        ones = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((ones, (rows, columns)), shape=(count, len(self._labels)))

    def _label_set_ids(self, label_set: LabelSet, row: int) -> list[int]:
        if label_set is None:
            return []
        if isinstance(label_set, (str, Integral)) or (torch.is_tensor(label_set) and label_set.dim() == 0):
            label_set = [label_set]
        where = f"in label set #{row}"
        try:
            return [self._lookup(label.item() if torch.is_tensor(label) else label, where) for label in label_set]
        except TypeError:
            raise UnknownLabelError(
                f"label set #{row} must be an iterable of label names or ids, got {label_set!r}"
            ) from None

    # ------------------------------------------------------------------ multi-hot / scores -> label sets

    def decode(
        self, multi_hot: Any, threshold: float | Sequence[float] | torch.Tensor = 0.5
    ) -> list[list[str]] | list[str]:
        """Names of the labels whose score reaches ``threshold`` (one float or one per label), in id order.

        A 2-D input ``[n, L]`` gives a list of ``n`` lists; a 1-D input ``[L]`` gives one list of names.
        """
        scores, single = self._as_scores(multi_hot, "decode")
        limits = torch.as_tensor(threshold, dtype=scores.dtype)
        if limits.dim() == 1 and limits.numel() != len(self._labels):
            raise HierconError(f"decode: {limits.numel()} thresholds given for {len(self._labels)} labels")
        names = self._names_per_row((scores >= limits.to(scores.device)).detach().cpu().numpy())
        return names[0] if single else names

    def _names_per_row(self, chosen: np.ndarray) -> list[list[str]]:
        return [[self._labels[i] for i in np.flatnonzero(row)] for row in chosen]

    def project(self, scores: Any, level: int) -> torch.Tensor:
        """Scores at one level: each node of ``level`` gets the max over itself and its descendants.

        For a multi-hot row (closed or leaves only) this is the multi-hot of that level; for probabilities it
        is the usual max-aggregation to a coarser level. Shape ``[..., len(level_labels(level))]``.
        """
        values, single = self._as_scores(scores, "project")
        lifted = self._propagate(values, "amax")[:, self.level_ids(level)]
        return lifted[0] if single else lifted

    # ------------------------------------------------------------------ hierarchical consistency

    def is_consistent(self, scores: Any, atol: float = 0.0) -> torch.Tensor:
        """Bool per row: no label scores above any of its parents (more than ``atol``). 1-D input gives a 0-d bool."""
        values, single = self._as_scores(scores, "is_consistent")
        child = torch.from_numpy(self._edge_child).to(values.device)
        parent = torch.from_numpy(self._edge_parent).to(values.device)
        consistent = ~(values[:, child] > values[:, parent] + atol).any(dim=1)
        return consistent[0] if single else consistent

    def make_consistent(self, scores: Any) -> torch.Tensor:
        """Repair scores so no child exceeds a parent: ``s'(c) = min(s(c), min over ancestors a of s(a))``.

        Computed top-down, one level at a time (each level reads its parents' repaired scores).
        Returns a float tensor of the input's shape; gradients flow through it.
        """
        values, single = self._as_scores(scores, "make_consistent")
        repaired = self._propagate(values, "amin")
        return repaired[0] if single else repaired

    @cached_property
    def _edges_by_child_level(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per depth 1..max, the (child ids, parent ids) of edges whose child sits at that depth."""
        child_depth = self._depth[self._edge_child]
        return [
            (
                torch.from_numpy(self._edge_child[child_depth == level]),
                torch.from_numpy(self._edge_parent[child_depth == level]),
            )
            for level in range(1, int(self._depth.max()) + 1)
        ]

    def _propagate(self, values: torch.Tensor, reduce: str) -> torch.Tensor:
        """``amin`` pushes parents' scores down to children (top-down); ``amax`` lifts children's scores
        up to parents (bottom-up)."""
        result = values.clone()
        groups = self._edges_by_child_level
        for child, parent in groups if reduce == "amin" else reversed(groups):
            source, target = (parent, child) if reduce == "amin" else (child, parent)
            source, target = source.to(result.device), target.to(result.device)
            index = target.expand(result.shape[0], -1)
            result = result.scatter_reduce(1, index, result[:, source], reduce=reduce, include_self=True)
        return result

    def _as_scores(self, scores: Any, caller: str) -> tuple[torch.Tensor, bool]:
        values = torch.as_tensor(np.asarray(scores) if not torch.is_tensor(scores) else scores)
        if values.dim() not in (1, 2) or values.shape[-1] != len(self._labels):
            raise HierconError(
                f"{caller}: expected scores of shape [n, {len(self._labels)}] or [{len(self._labels)}], "
                f"got {tuple(values.shape)}"
            )
        if not values.is_floating_point():
            values = values.float()
        single = values.dim() == 1
        return (values.unsqueeze(0) if single else values), single
