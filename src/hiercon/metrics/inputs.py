"""Conversion and validation of the arrays that hiercon's metrics accept.

Every metric takes numpy arrays, torch tensors (any device, with or without grad) or nested
lists, and refuses malformed input with a :class:`~hiercon.errors.HierconError` naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hiercon.errors import HierconError
from hiercon.taxonomy.label_space import check_multi_hot

ArrayLike = Any  # numpy array, torch tensor, or nested sequence of numbers


def to_numpy(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
        if values.dtype.is_floating_point:
            values = values.float()
        values = values.numpy()
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as error:
        raise HierconError(f"{name} is not an array of numbers: {error}") from error
    if array.dtype == object:
        raise HierconError(f"{name} is ragged or holds non-numbers (rows of different lengths?)")
    return array


def as_matrix(values: ArrayLike, name: str) -> np.ndarray:
    """A finite float matrix ``[n, d]`` with at least one row."""
    array = to_numpy(values, name)
    if array.ndim != 2:
        raise HierconError(f"{name} must be 2-D [n, d], got shape {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise HierconError(f"{name} is empty")
    if array.dtype.kind not in "iufb":
        raise HierconError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise HierconError(f"{name} holds NaN or infinite values")
    return array


def as_multi_hot(values: ArrayLike, name: str) -> np.ndarray:
    """A 0/1 integer matrix ``[n, L]``; floats must already be exactly 0 or 1 (checked by
    :func:`~hiercon.taxonomy.label_space.check_multi_hot`)."""
    array = to_numpy(values, name)
    check_multi_hot(array, name, error=HierconError)
    return array.astype(np.int64, copy=False)


def as_label_matrix(values: ArrayLike, name: str) -> np.ndarray:
    """Labels as a multi-hot matrix: a 2-D multi-hot matrix as is, 1-D class ids one-hot encoded."""
    array = to_numpy(values, name)
    if array.ndim == 1:
        return one_hot(array, name)
    return as_multi_hot(array, name)


def as_class_ids(values: ArrayLike, name: str) -> np.ndarray:
    """A 1-D array of non-negative integer class ids."""
    array = to_numpy(values, name)
    if array.ndim != 1:
        raise HierconError(f"{name} must be 1-D class ids, got shape {array.shape}")
    whole_floats = array.dtype.kind == "f" and bool(np.equal(array, np.round(array)).all())
    if array.dtype.kind not in "iub" and not whole_floats:
        raise HierconError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise HierconError(f"{name} holds a negative class id ({array.min()})")
    return array


def one_hot(class_ids: ArrayLike, name: str) -> np.ndarray:
    """One-hot matrix ``[n, max_id + 1]`` of 1-D class ids."""
    ids = as_class_ids(class_ids, name)
    matrix = np.zeros((ids.size, int(ids.max()) + 1 if ids.size else 0), dtype=np.int64)
    matrix[np.arange(ids.size), ids] = 1
    return matrix


def check_same_rows(first: np.ndarray, second: np.ndarray, first_name: str, second_name: str) -> None:
    """Refuse two arrays that do not describe the same number of examples."""
    if first.shape[0] != second.shape[0]:
        raise HierconError(f"{first_name} has {first.shape[0]} rows but {second_name} has {second.shape[0]}")


def check_same_shape(first: np.ndarray, second: np.ndarray, first_name: str, second_name: str) -> None:
    """Refuse two arrays of different shapes."""
    if first.shape != second.shape:
        raise HierconError(f"{first_name} has shape {first.shape} but {second_name} has {second.shape}")
