"""What a stage-1 loss gets as ``labels``, by its ``label_kind``, and the checks of label columns.

- ``"multi_hot"``: the ``labels`` column as a float ``[B, L]`` matrix;
- ``"class_ids"``: the ``labels`` column as is (class ids ``[B]`` or multi-hot ``[B, L]``);
- ``"paths"``: a ``label_paths`` column ``[B, num_levels]``; else, for a loss that holds its own
  taxonomy (``loss.taxonomy``), the multi-hot labels (it reads them level by level); else paths
  derived from multi-hot labels and the trainer's taxonomy: the path (coarse to fine) of each
  example's deepest label (ties: the lowest label id), padded by repeating that label (an
  example without labels gets ``-1``s);
- ``"clusters"``: a ``cluster_ids`` column, or the cluster callback's assignments indexed by the
  example's ``index`` column;
- ``"none"``: nothing (``labels=None``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hiercon.errors import ConfigError, UnknownLabelError

LABEL_KINDS = ("class_ids", "multi_hot", "paths", "clusters", "none")
PATHS_COLUMN = "label_paths"
CLUSTERS_COLUMN = "cluster_ids"
INDEX_COLUMN = "index"
_CHECKED_ROWS = 256


def node_paths(taxonomy: Any) -> torch.Tensor:
    """``[L, num_levels]`` coarse-to-fine path of every label, padded by repeating the label.

    A label with several parents follows the parent of greatest depth, so position ``d`` of a
    path holds a label of depth ``d``.
    """
    depths = [int(d) for d in taxonomy.levels.tolist()]
    paths = torch.empty(taxonomy.num_labels, taxonomy.num_levels, dtype=torch.long)
    for label_id in range(taxonomy.num_labels):
        chain = [label_id]
        while True:
            parents = [taxonomy.index(p) for p in taxonomy.parents(taxonomy.label(chain[0]))]
            if not parents:
                break
            chain.insert(0, max(parents, key=lambda p: (depths[p], -p)))
        chain += [label_id] * (taxonomy.num_levels - len(chain))
        paths[label_id] = torch.tensor(chain[: taxonomy.num_levels])
    return paths


def deepest_labels(multi_hot: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """``[B]`` id of each row's deepest active label (ties: lowest id), ``-1`` for an empty row."""
    num_labels = multi_hot.shape[1]
    ids = torch.arange(num_labels, device=multi_hot.device)
    key = (depths.to(multi_hot.device) + 1) * (num_labels + 1) - ids
    scored = torch.where(multi_hot > 0, key, torch.zeros_like(key))
    best = scored.argmax(dim=1)
    return torch.where((multi_hot > 0).any(dim=1), best, torch.full_like(best, -1))


class LabelFeeder:
    """Turns a batch's label columns into the ``labels`` argument of a loss of ``label_kind``."""

    def __init__(
        self,
        label_kind: str,
        taxonomy: Any = None,
        label_column: str = "labels",
        loss_reads_multi_hot: bool = False,
    ) -> None:
        if label_kind not in LABEL_KINDS:
            raise ConfigError(f"loss label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
        self.kind = label_kind
        self.loss_reads_multi_hot = loss_reads_multi_hot
        self.taxonomy = taxonomy
        self.column = label_column
        self._paths: torch.Tensor | None = None

    @property
    def needs_example_index(self) -> bool:
        return self.kind == "clusters"

    @property
    def own_columns(self) -> list[str]:
        """Columns this feeder reads (kept by ``remove_unused_columns``; not passed as extras)."""
        columns = [self.column]
        if self.kind == "paths":
            columns.append(PATHS_COLUMN)
        if self.kind == "clusters":
            columns += [CLUSTERS_COLUMN, INDEX_COLUMN]
        return columns

    def default_label_names(self) -> list[str]:
        return [self.column]

    def has_label_column(self, dataset: Any) -> bool:
        columns = list(getattr(dataset, "column_names", []) or [])
        return self.column in columns or "label" in columns

    def column_in(self, dataset: Any) -> str:
        """The label column of ``dataset`` (``label`` is accepted for ``labels``)."""
        columns = list(getattr(dataset, "column_names", []) or [])
        for name in (self.column, "label"):
            if name in columns:
                return name
        raise ConfigError(f"the dataset has no label column {self.column!r} (columns: {columns})")

    # ---- checks ----

    def check_dataset(self, dataset: Any, columns: list[str]) -> None:
        """Refuse missing label columns, labels of the wrong shape and labels outside the taxonomy."""
        if self.kind == "none":
            return
        if self.kind == "clusters":
            if CLUSTERS_COLUMN in columns:
                self._check_ids(_column_values(dataset, CLUSTERS_COLUMN), CLUSTERS_COLUMN, bound=None)
            return
        if self.kind == "paths" and PATHS_COLUMN in columns:
            self._check_paths(_column_values(dataset, PATHS_COLUMN))
            return
        column = self.column if self.column in columns else "label" if "label" in columns else None
        if column is None:
            raise ConfigError(
                f"the train dataset has no label column {self.column!r} (columns: {columns}); "
                f"the loss needs {self.kind!r} labels"
            )
        values = _column_values(dataset, column)
        if self.kind == "paths" and self.taxonomy is None and not self.loss_reads_multi_hot:
            raise ConfigError(
                f"the loss needs label paths: give the trainer a taxonomy= or the dataset a {PATHS_COLUMN!r} column"
            )
        if values.ndim == 1 and self.kind == "class_ids":
            self._check_ids(values, column, bound=self._num_labels())
        elif values.ndim == 2:
            self._check_multi_hot(values, column)
        else:
            expected = "[N] class ids or [N, L] multi-hot" if self.kind == "class_ids" else "[N, L] multi-hot"
            raise ConfigError(f"column {column!r} has labels of shape {values.shape}; expected {expected}")

    def _num_labels(self) -> int | None:
        return None if self.taxonomy is None else int(self.taxonomy.num_labels)

    def _check_ids(self, values: np.ndarray, column: str, bound: int | None) -> None:
        if values.ndim not in (1, 2) or values.dtype.kind not in "iu":
            raise ConfigError(
                f"column {column!r} must hold integer ids, got {values.dtype} of shape {values.shape}"
            )
        if bound is not None and values.size and int(values.max()) >= bound:
            raise UnknownLabelError(
                f"column {column!r} holds label id {int(values.max())}, outside the taxonomy's {bound} labels"
            )

    def _check_multi_hot(self, values: np.ndarray, column: str) -> None:
        if values.dtype.kind not in "biuf":
            raise ConfigError(f"column {column!r} must be numeric multi-hot, got {values.dtype}")
        bound = self._num_labels()
        if bound is not None and values.shape[1] != bound:
            raise UnknownLabelError(
                f"column {column!r} has multi-hot rows of width {values.shape[1]}, but the taxonomy has "
                f"{bound} labels; encode the labels with taxonomy.encode"
            )
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ConfigError(
                f"column {column!r} must be multi-hot in [0, 1], got values in [{values.min()}, {values.max()}]"
            )

    def _check_paths(self, values: np.ndarray) -> None:
        if values.ndim != 2:
            raise ConfigError(f"column {PATHS_COLUMN!r} must be [N, num_levels], got shape {values.shape}")
        self._check_ids(values, PATHS_COLUMN, bound=self._num_labels())

    # ---- batches ----

    def can_score(self, label_inputs: dict[str, Any], cluster_assignments: torch.Tensor | None) -> bool:
        if self.kind == "none":
            return True
        if self.kind == "clusters":
            return CLUSTERS_COLUMN in label_inputs or (
                INDEX_COLUMN in label_inputs and cluster_assignments is not None
            )
        return self.column in label_inputs or (self.kind == "paths" and PATHS_COLUMN in label_inputs)

    def loss_labels(
        self, label_inputs: dict[str, Any], cluster_assignments: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor | None:
        if self.kind == "none":
            return None
        if self.kind == "clusters":
            return self._cluster_labels(label_inputs, cluster_assignments, device)
        if self.kind == "paths" and PATHS_COLUMN in label_inputs:
            return label_inputs[PATHS_COLUMN].long()
        labels = label_inputs.get(self.column)
        if labels is None:
            raise ConfigError(f"the batch has no label column {self.column!r}")
        if self.kind == "multi_hot" or (self.kind == "paths" and self.loss_reads_multi_hot):
            return labels.float()
        if self.kind == "paths":
            return self._paths_of(labels)
        return labels if labels.dim() == 1 else labels.float()

    def _paths_of(self, multi_hot: torch.Tensor) -> torch.Tensor:
        if self.taxonomy is None:
            raise ConfigError("turning multi-hot labels into label paths needs a taxonomy")
        if multi_hot.dim() != 2 or multi_hot.shape[1] != self.taxonomy.num_labels:
            raise ConfigError(
                f"labels of shape {tuple(multi_hot.shape)} do not match the taxonomy's {self.taxonomy.num_labels} labels"
            )
        if self._paths is None:
            self._paths = node_paths(self.taxonomy)
        paths = self._paths.to(multi_hot.device)
        deepest = deepest_labels(multi_hot, self.taxonomy.levels)
        picked = paths[deepest.clamp_min(0)]
        return torch.where((deepest >= 0)[:, None], picked, torch.full_like(picked, -1))

    @staticmethod
    def _cluster_labels(
        label_inputs: dict[str, Any], cluster_assignments: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        if CLUSTERS_COLUMN in label_inputs:
            return label_inputs[CLUSTERS_COLUMN].long()
        if cluster_assignments is None:
            raise ConfigError(
                "the loss needs cluster labels, but there are no cluster assignments yet: "
                f"add a ClusterCallback to the trainer or a {CLUSTERS_COLUMN!r} column to the dataset"
            )
        if INDEX_COLUMN not in label_inputs:
            raise ConfigError(
                f"cluster labels are looked up by the {INDEX_COLUMN!r} column, missing from the batch"
            )
        picked = cluster_assignments.to(device)[label_inputs[INDEX_COLUMN].long()]
        return picked[:, 0] if picked.dim() == 2 and picked.shape[1] == 1 else picked


def _column_values(dataset: Any, column: str) -> np.ndarray:
    """The values of ``column`` as one array (a sample of rows for datasets without columns)."""
    if hasattr(dataset, "column_names"):
        rows = dataset[column]
    else:
        rows = [dataset[i][column] for i in range(min(len(dataset), _CHECKED_ROWS))]
    if hasattr(rows, "numpy"):
        return rows.numpy()
    try:
        values = np.asarray(rows)
    except ValueError as error:
        raise ConfigError(f"column {column!r} has rows of different lengths") from error
    if values.dtype == object:
        raise ConfigError(f"column {column!r} has rows of different lengths or non-numeric values")
    if values.dtype.kind in "US":
        raise ConfigError(
            f"column {column!r} holds label names ({values.ravel()[0]!r}...); encode them to multi-hot with "
            "taxonomy.encode first"
        )
    return values
