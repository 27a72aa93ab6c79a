r"""Vectorised label-structure utilities for the hierarchical and ranked losses.

- **Label paths** ``[B, K]`` (integer ids, coarse to fine): prefix group ids through
  ``unique(return_inverse=True)``, and the depth of the deepest shared prefix

  .. math:: \mathrm{depth}_{ab} = \sum_{l=1}^{K} \prod_{l' \le l} 1[y_a^{l'} = y_b^{l'}]

  as one cumulative product; "positive at HMLC level ``l``" is ``depth >= K - l``.
- **Representatives**: the first item of each group (``scatter_reduce(amin)``), deterministic on
  every device.
- **Rank matrices**: from a similarity row over classes, each class's dense rank (1 = most
  similar) and the similarity of each rank.
"""

from __future__ import annotations

import torch

from hiercon.errors import LossInputError


def shared_prefix_depth(anchor_paths: torch.Tensor, key_paths: torch.Tensor) -> torch.Tensor:
    """``[A, N]`` long: the length of the longest common prefix of two sets of label paths."""
    if anchor_paths.shape[1] != key_paths.shape[1]:
        raise LossInputError(
            f"label paths have {anchor_paths.shape[1]} and {key_paths.shape[1]} columns; they must match"
        )
    equal = anchor_paths[:, None, :] == key_paths[None, :, :]
    return torch.cumprod(equal.long(), dim=2).sum(dim=2)


def prefix_group_ids(paths: torch.Tensor, length: int) -> torch.Tensor:
    """``[B]`` long: items with the same first ``length`` columns share an id (ids ``0..G-1``)."""
    if length <= 0:
        return torch.zeros(paths.shape[0], dtype=torch.long, device=paths.device)
    return row_group_ids(paths[:, :length])


def row_group_ids(rows: torch.Tensor) -> torch.Tensor:
    """``[B]`` long: identical rows share an id (``unique(dim=0, return_inverse=True)``)."""
    if rows.shape[1] == 0:
        return torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)
    return torch.unique(rows, dim=0, return_inverse=True)[1]


def first_of_group(group_ids: torch.Tensor, item_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` bool: the row is its group's representative, the one with the smallest item id.

    ``item_ids`` (default: the row positions) may repeat, e.g. one row per view of an item; all
    rows of the chosen item are then representatives.
    """
    if item_ids is None:
        item_ids = torch.arange(group_ids.shape[0], device=group_ids.device)
    groups = int(group_ids.max().item()) + 1 if group_ids.numel() else 0
    first = torch.full((groups,), torch.iinfo(torch.long).max, dtype=torch.long, device=group_ids.device)
    first = first.scatter_reduce(0, group_ids, item_ids.long(), reduce="amin")
    return first[group_ids] == item_ids


def check_similarity_matrix(similarity: torch.Tensor) -> torch.Tensor:
    """Validate a class-to-class similarity ``[C, C]`` in ``[0, 1]`` with ones on the diagonal."""
    if not isinstance(similarity, torch.Tensor):
        similarity = torch.as_tensor(similarity)
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1] or similarity.shape[0] == 0:
        raise LossInputError(
            f"similarity must be a square [C, C] matrix, got shape {tuple(similarity.shape)}"
        )
    similarity = similarity.double()
    if not bool(torch.isfinite(similarity).all()) or bool((similarity < 0).any() | (similarity > 1).any()):
        raise LossInputError("similarity must hold finite values in [0, 1]")
    off_diagonal = (similarity.diagonal() != 1).nonzero().flatten()
    if off_diagonal.numel():
        raise LossInputError(
            f"similarity must be 1 on the diagonal (a class is most similar to itself); class "
            f"{int(off_diagonal[0])} has {float(similarity[off_diagonal[0], off_diagonal[0]])}"
        )
    return similarity


def rank_rows(
    rows: torch.Tensor,
    threshold: float = 0.0,
    max_ranks: int | None = None,
    merge_equal: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank the columns of each similarity row, most similar first.

    Returns ``ranks`` ``[R, C]`` (long; 1 for the most similar column, 0 for columns at or below
    ``threshold`` or past ``max_ranks``) and ``values`` ``[R, max rank]`` (the similarity of each
    rank, 0 where a row has fewer ranks). With ``merge_equal`` equal similarities share a dense
    rank; otherwise every column is its own rank, ties broken by column index.
    """
    sorted_values, order = torch.sort(rows, dim=1, descending=True, stable=True)
    if merge_equal:
        changed = torch.ones_like(sorted_values, dtype=torch.bool)
        changed[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
        sorted_ranks = torch.cumsum(changed.long(), dim=1)
    else:
        sorted_ranks = torch.arange(1, rows.shape[1] + 1, device=rows.device).expand_as(order)
    ranked = sorted_values > threshold
    if max_ranks is not None:
        ranked &= sorted_ranks <= max_ranks
    sorted_ranks = torch.where(ranked, sorted_ranks, 0)
    ranks = torch.zeros_like(sorted_ranks).scatter(1, order, sorted_ranks)
    depth = int(sorted_ranks.max().item()) if sorted_ranks.numel() else 0
    values = rows.new_zeros((rows.shape[0], depth + 1))
    values = values.scatter(1, sorted_ranks, torch.where(ranked, sorted_values, 0.0))
    return ranks, values[:, 1:]
