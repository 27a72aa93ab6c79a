"""Tensors that losses and metrics read from a taxonomy, built once (vectorised) and cached.

The ancestor structure is computed with scipy sparse matrices: with ``P`` the child -> parent adjacency,
the ancestors-or-self of every label are ``I + P + P^2 + ...`` (binarised), one sparse product per level,
so a 100,000-label taxonomy builds in seconds and never needs a dense ``L x L`` matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import torch

from hiercon.errors import TaxonomyError


class TensorsMixin:
    """Cached tensor views of :class:`~hiercon.taxonomy.LabelTaxonomy`."""

    #: Above this many labels the dense ``L x L`` properties refuse to build (use the sparse/row forms).
    max_dense_labels: int = 20_000

    _labels: tuple[str, ...]
    _depth: np.ndarray
    _edge_child: np.ndarray
    _edge_parent: np.ndarray

    num_levels: int

    @cached_property
    def _ancestor_csr(self) -> sp.csr_matrix:
        """Boolean CSR ``[L, L]``: row ``i`` is true at ``i`` and at every ancestor of ``i``."""
        size = len(self._labels)
        ones = np.ones(len(self._edge_child), dtype=np.float32)
        to_parent = sp.csr_matrix((ones, (self._edge_child, self._edge_parent)), shape=(size, size))
        reach = sp.identity(size, dtype=np.float32, format="csr")
        step = reach
        for _ in range(self.num_levels - 1):
            step = step @ to_parent
            if step.nnz == 0:
                break
            step.data[:] = 1.0
            reach = reach + step
        reach = reach.astype(bool).tocsr()
        reach.sort_indices()
        return reach

    @cached_property
    def _ancestor_float(self) -> sp.csr_matrix:
        """``_ancestor_csr`` as float32, for sparse products."""
        return self._ancestor_csr.astype(np.float32)

    @cached_property
    def ancestor_matrix_sparse(self) -> torch.Tensor:
        """Sparse COO float tensor ``[L, L]`` (coalesced, values 1.0): row ``i`` marks ``i`` and its ancestors."""
        coo = self._ancestor_csr.tocoo()
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.ones(coo.nnz, dtype=torch.float32)
        return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False).coalesce()

    @cached_property
    def ancestor_matrix(self) -> torch.Tensor:
        """Dense bool tensor ``[L, L]``: row ``i`` is true at ``i`` and at each ancestor of ``i``."""
        self._require_dense("ancestor_matrix", "ancestor_matrix_sparse")
        return torch.from_numpy(self._ancestor_csr.toarray())

    @cached_property
    def levels(self) -> torch.Tensor:
        """LongTensor ``[L]``: the depth of every label (longest path from a root; roots are 0)."""
        return torch.from_numpy(self._depth.copy())

    @cached_property
    def edge_index(self) -> torch.Tensor:
        """LongTensor ``[2, E]``: row 0 the parent ids, row 1 the child ids, sorted by child then parent."""
        return torch.from_numpy(np.vstack([self._edge_parent, self._edge_child]).astype(np.int64))

    @cached_property
    def _leaf_mask(self) -> np.ndarray:
        mask = np.ones(len(self._labels), dtype=bool)
        mask[self._edge_parent] = False
        return mask

    @cached_property
    def leaf_ids(self) -> torch.Tensor:
        """LongTensor of the leaf ids in increasing order."""
        return torch.from_numpy(np.flatnonzero(self._leaf_mask).astype(np.int64))

    @cached_property
    def _main_parent(self) -> np.ndarray:
        """Per label, the smallest-id parent one level up (-1 for roots): the spine of ``leaf_paths``."""
        main = np.full(len(self._labels), -1, dtype=np.int64)
        one_up = self._depth[self._edge_parent] == self._depth[self._edge_child] - 1
        children, first = np.unique(self._edge_child[one_up], return_index=True)
        main[children] = self._edge_parent[one_up][first]
        return main

    @cached_property
    def node_paths(self) -> torch.Tensor:
        """LongTensor ``[L, num_levels]``: the ids on each label's path, coarse to fine.

        Column ``d`` holds the label's ancestor at depth ``d``; a label shallower than the deepest level
        repeats its own id in the remaining columns. A DAG label follows, at each step up, its smallest-id
        parent exactly one level higher (one always exists because depth is the longest path from a root).
        """
        labels = np.arange(len(self._labels))
        paths = np.repeat(labels[:, None], self.num_levels, axis=1)
        node, depth = labels.copy(), self._depth.copy()
        while (depth >= 0).any():
            alive = depth >= 0
            paths[labels[alive], depth[alive]] = node[alive]
            node = np.where(alive, self._main_parent[node], node)
            depth -= 1
        return torch.from_numpy(paths)

    @cached_property
    def leaf_paths(self) -> torch.Tensor:
        """LongTensor ``[num_leaves, num_levels]``: :attr:`node_paths` of the leaves."""
        return self.node_paths[self.leaf_ids]

    def level_ids(self, level: int) -> torch.Tensor:
        """LongTensor of the ids at depth ``level`` (negative levels count from the deepest)."""
        if not -self.num_levels <= level < self.num_levels:
            raise TaxonomyError(f"level {level} is out of range: the taxonomy has {self.num_levels} levels")
        return torch.from_numpy(np.flatnonzero(self._depth == level % self.num_levels).astype(np.int64))

    @cached_property
    def similarity_matrix(self) -> torch.Tensor:
        """Float tensor ``[L, L]`` of hierarchical similarity (see :meth:`similarity_rows`)."""
        self._require_dense("similarity_matrix", "similarity_rows(ids)")
        return self.similarity_rows(range(len(self._labels)))

    def similarity_rows(self, ids: Sequence[int] | torch.Tensor | range) -> torch.Tensor:
        """Rows ``ids`` of the similarity matrix as a float tensor ``[len(ids), L]``.

        ``sim(a, b) = (depth(c) + 1) / (max(depth(a), depth(b)) + 1)`` where ``c`` is the deepest common
        ancestor-or-self of ``a`` and ``b`` (depths counted from 0 at the roots, so levels are 1-based here).
        It is 1 on the diagonal and 0 for labels that share no ancestor. Costs ``O(len(ids) * L * num_levels)``, so it also serves large taxonomies.
        """
        rows = np.asarray(torch.as_tensor(list(ids) if isinstance(ids, range) else ids), dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self._labels)):
            raise TaxonomyError(f"similarity_rows: ids must lie in [0, {len(self._labels)})")
        reach = self._ancestor_float
        picked = reach[rows]
        shared_depth = np.zeros((len(rows), len(self._labels)), dtype=np.float32)
        for level in range(self.num_levels - 1, -1, -1):
            columns = np.flatnonzero(self._depth == level)
            shares = (picked[:, columns] @ reach[:, columns].T).toarray() > 0
            shared_depth = np.where((shared_depth == 0) & shares, level + 1, shared_depth)
        deeper = np.maximum(self._depth[rows][:, None], self._depth[None, :]) + 1
        return torch.from_numpy((shared_depth / deeper).astype(np.float32))

    def _require_dense(self, name: str, alternative: str) -> None:
        if len(self._labels) > self.max_dense_labels:
            raise TaxonomyError(
                f"{name} would be a dense {len(self._labels)} x {len(self._labels)} matrix (more than "
                f"max_dense_labels={self.max_dense_labels} labels); use {alternative} instead"
            )
