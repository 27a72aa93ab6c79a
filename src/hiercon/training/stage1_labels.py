"""What a stage-1 loss gets as ``labels``, by its ``label_kind``, and the checks of label columns.

With a :class:`~hiercon.taxonomy.LabelSpace` (the trainer's taxonomy, or the loss's own), the
``labels`` column may hold any format the label space reads (names, path strings, ids, multi-hot
over the nodes or the leaves): it becomes the float multi-hot ``[B, C]`` over the label space's
columns, the same conversion the loss and the recipe apply. Then, by ``label_kind``:

- ``"multi_hot"``: that ``[B, C]`` matrix;
- ``"class_ids"``: integer class ids ``[B]`` as they are, else the ``[B, C]`` matrix;
- ``"paths"``: a ``label_paths`` column ``[B, num_levels]``; else, for a loss that holds its own
  taxonomy (``loss.taxonomy``), the multi-hot labels (it reads them level by level); else
  :meth:`LabelSpace.paths`: the path (coarse to fine) of each example's deepest label, padded
  by repeating that label (an example without labels gets ``-1``s);
- ``"clusters"``: a ``cluster_ids`` column, or the cluster callback's assignments indexed by the
  example's ``index`` column;
- ``"none"``: nothing (``labels=None``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hiercon.errors import ConfigError, UnknownLabelError
from hiercon.taxonomy.label_space import LabelSpace, check_multi_hot, is_numeric_array

LABEL_KINDS = ("class_ids", "multi_hot", "paths", "clusters", "none")
PATHS_COLUMN = "label_paths"
CLUSTERS_COLUMN = "cluster_ids"
INDEX_COLUMN = "index"
_CHECKED_ROWS = 256


class LabelFeeder:
    """Turns a batch's label columns into the ``labels`` argument of a loss of ``label_kind``."""

    def __init__(
        self,
        label_kind: str,
        label_space: LabelSpace | None = None,
        label_column: str = "labels",
        loss_reads_multi_hot: bool = False,
    ) -> None:
        if label_kind not in LABEL_KINDS:
            raise ConfigError(f"loss label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
        self.kind = label_kind
        self.loss_reads_multi_hot = loss_reads_multi_hot
        self.label_space = label_space
        self.column = label_column
        #: Set when the batches come from a collator that already encodes labels over the label space
        #: (the trainer's default one): they are then used as they are, with no per-step conversion.
        self.batches_encoded = False

    def multi_hot(self, values: Any, name: str | None = None) -> Any:
        """The label space's multi-hot of a label column's values (any format it reads)."""
        if self.label_space is None:
            raise ConfigError(
                f"column {name or self.column!r} holds label names or paths; they need a label space: give the "
                "trainer taxonomy= (or a loss that holds one), or encode them with LabelSpace.multi_hot first"
            )
        return self.label_space.multi_hot(values, name or self.column)

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
        if self.kind == "paths" and self.label_space is None and not self.loss_reads_multi_hot:
            raise ConfigError(
                f"the loss needs label paths: give the trainer a taxonomy= or the dataset a {PATHS_COLUMN!r} column"
            )
        values = _column_values(dataset, column)
        if is_numeric_array(values) and values.ndim == 1 and values.dtype.kind in "iu" and self.kind == "class_ids":
            self._check_ids(values, column, bound=self._num_labels())
        elif self.label_space is not None or not is_numeric_array(values):
            self.multi_hot(values, column)
        elif values.ndim == 2:
            check_multi_hot(values, f"column {column!r}", error=ConfigError)
        else:
            expected = "[N] class ids or [N, L] multi-hot" if self.kind == "class_ids" else "[N, L] multi-hot"
            raise ConfigError(f"column {column!r} has labels of shape {values.shape}; expected {expected}")

    def example_label_matrix(self, dataset: Any) -> Any:
        """The label column of ``dataset`` as the batch sampler reads it: the label space's multi-hot, or
        the column's own numbers without a label space."""
        column = self.column_in(dataset)
        if self.label_space is None:
            return dataset[column]
        return np.asarray(self.multi_hot(_column_values(dataset, column), column))

    def _num_labels(self) -> int | None:
        return None if self.label_space is None else self.label_space.num_labels

    def _check_ids(self, values: np.ndarray, column: str, bound: int | None) -> None:
        if values.ndim not in (1, 2) or values.dtype.kind not in "iu":
            raise ConfigError(
                f"column {column!r} must hold integer ids, got {values.dtype} of shape {values.shape}"
            )
        if bound is not None and values.size and int(values.max()) >= bound:
            raise UnknownLabelError(
                f"column {column!r} holds label id {int(values.max())}, outside the taxonomy's {bound} labels"
            )

    def _check_paths(self, values: np.ndarray) -> None:
        if values.ndim != 2:
            raise ConfigError(f"column {PATHS_COLUMN!r} must be [N, num_levels], got shape {values.shape}")
        bound = None if self.label_space is None else self.label_space.num_nodes
        self._check_ids(values, PATHS_COLUMN, bound=bound)

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
        if self.kind == "class_ids" and torch.is_tensor(labels) and labels.dim() == 1:
            return labels
        encoded = self.batches_encoded and torch.is_tensor(labels) and labels.dim() == 2
        if not encoded and (
            self.label_space is not None or not torch.is_tensor(labels)
        ):
            labels = torch.as_tensor(self.multi_hot(labels)).to(device)
        labels = labels.float()
        if self.kind == "paths" and not self.loss_reads_multi_hot:
            return self.label_space.paths(labels)
        return labels

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


def _column_values(dataset: Any, column: str) -> Any:
    """The values of ``column``: one numeric array when they are numbers of one shape, else the list of
    rows (label names or paths); a sample of rows for datasets without columns."""
    if hasattr(dataset, "column_names"):
        rows = dataset[column]
    else:
        rows = [dataset[i][column] for i in range(min(len(dataset), _CHECKED_ROWS))]
    if hasattr(rows, "numpy"):
        return rows.numpy()
    rows = list(rows)
    try:
        values = np.asarray(rows)
    except ValueError:
        return rows
    return values if values.dtype.kind in "biuf" else rows
