"""Metrics of an embedding space: cosine k-nearest-neighbour classification and MAP@R retrieval.

All three metrics share one neighbour search (:func:`nearest_neighbours`) that scores queries
against the reference set in row chunks, so 50k x 50k never materialises a dense similarity
matrix. Without a reference set the queries are their own reference and each query leaves itself
out (leave-one-out).

Neighbour votes are similarity-weighted with :math:`w = (1 + \\cos) / 2 \\in [0, 1]`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from hiercon.errors import HierconError
from hiercon.metrics.classification import f1_summary
from hiercon.metrics.inputs import (
    ArrayLike,
    as_class_ids,
    as_label_matrix,
    as_matrix,
    check_same_rows,
    to_numpy,
)

SIMILARITIES_PER_CHUNK = 1 << 24  # float32 entries of one similarity chunk (64 MiB)


class Neighbours(NamedTuple):
    """The ``k`` nearest reference items of each query, most similar first."""

    indices: np.ndarray  # [n, k] int64 rows of the reference set
    similarities: np.ndarray  # [n, k] cosine similarities


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    """Unit-length rows as float32 (a zero row stays zero: similarity 0 to everything)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def chunk_bounds(num_queries: int, num_reference: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` query rows of chunks that hold about ``SIMILARITIES_PER_CHUNK`` scores each."""
    rows = max(1, SIMILARITIES_PER_CHUNK // max(1, num_reference))
    for start in range(0, num_queries, rows):
        yield start, min(num_queries, start + rows)


def _chunk_similarities(
    queries: np.ndarray, reference: np.ndarray, start: int, stop: int, leave_one_out: bool
) -> np.ndarray:
    similarities = queries[start:stop] @ reference.T
    if leave_one_out:
        rows = np.arange(stop - start)
        similarities[rows, start + rows] = -np.inf
    return similarities


def _top_columns(similarities: np.ndarray, count: int) -> np.ndarray:
    """Column indices of the ``count`` largest entries of each row, largest first (ties by index)."""
    if count < similarities.shape[1]:
        candidates = np.argpartition(-similarities, count - 1, axis=1)[:, :count]
    else:
        candidates = np.broadcast_to(np.arange(similarities.shape[1]), similarities.shape)
    candidate_scores = np.take_along_axis(similarities, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    return np.take_along_axis(candidates, order, axis=1)


def _query_and_reference(
    embeddings: ArrayLike, reference_embeddings: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    queries = normalize_rows(as_matrix(embeddings, "embeddings"))
    if reference_embeddings is None:
        if queries.shape[0] < 2:
            raise HierconError("leave-one-out neighbours need at least 2 embeddings")
        return queries, queries, True
    reference = normalize_rows(as_matrix(reference_embeddings, "reference_embeddings"))
    if reference.shape[1] != queries.shape[1]:
        raise HierconError(
            f"embeddings have dimension {queries.shape[1]} but reference_embeddings {reference.shape[1]}"
        )
    return queries, reference, False


def nearest_neighbours(
    embeddings: ArrayLike, k: int = 10, reference_embeddings: ArrayLike | None = None
) -> Neighbours:
    """Cosine ``k`` nearest neighbours of each embedding in ``reference_embeddings`` (or, without
    a reference, among the other embeddings). ``k`` is capped at the number of candidates."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise HierconError(f"k must be a positive integer, got {k!r}")
    queries, reference, leave_one_out = _query_and_reference(embeddings, reference_embeddings)
    k = min(int(k), reference.shape[0] - int(leave_one_out))
    indices = np.empty((queries.shape[0], k), dtype=np.int64)
    similarities = np.empty((queries.shape[0], k), dtype=np.float32)
    for start, stop in chunk_bounds(queries.shape[0], reference.shape[0]):
        chunk = _chunk_similarities(queries, reference, start, stop, leave_one_out)
        top = _top_columns(chunk, k)
        indices[start:stop] = top
        similarities[start:stop] = np.take_along_axis(chunk, top, axis=1)
    return Neighbours(indices, similarities)


def vote_weights(similarities: np.ndarray) -> np.ndarray:
    """Neighbour weights ``(1 + cos) / 2``, normalised to sum to one per query."""
    weights = (1.0 + similarities.astype(np.float64)) / 2.0 + 1e-12
    return weights / weights.sum(axis=1, keepdims=True)


def multi_label_vote(
    neighbours: Neighbours, reference_labels: np.ndarray, at_least_one: bool = True
) -> np.ndarray:
    """Multi-hot predictions: a label is predicted when it holds more than half of the neighbours'
    weight; with ``at_least_one``, the label with the most weight is predicted in any case."""
    weights = vote_weights(neighbours.similarities)
    scores = np.zeros((weights.shape[0], reference_labels.shape[1]))
    for rank in range(weights.shape[1]):  # one neighbour rank at a time: memory stays [n, L]
        scores += weights[:, rank, None] * reference_labels[neighbours.indices[:, rank]]
    predicted = scores > 0.5
    if at_least_one:
        rows = np.flatnonzero(scores.max(axis=1) > 0)
        predicted[rows, scores[rows].argmax(axis=1)] = True
    return predicted.astype(np.int64)


def class_vote(neighbours: Neighbours, reference_ids: np.ndarray) -> np.ndarray:
    """Class id with the largest summed neighbour weight (ties go to the smaller id)."""
    weights = vote_weights(neighbours.similarities)
    votes = np.zeros((weights.shape[0], int(reference_ids.max()) + 1))
    rows = np.repeat(np.arange(weights.shape[0]), weights.shape[1])
    np.add.at(votes, (rows, reference_ids[neighbours.indices].ravel()), weights.ravel())
    return votes.argmax(axis=1)


def _reference_labels(
    labels: np.ndarray, reference_labels: ArrayLike | None, reference_embeddings: ArrayLike | None
) -> np.ndarray:
    if (reference_labels is None) != (reference_embeddings is None):
        raise HierconError("reference_embeddings and reference_labels must be given together")
    if reference_labels is None:
        return labels
    reference = as_label_matrix(reference_labels, "reference_labels")
    width = max(labels.shape[1], reference.shape[1])
    return _pad_columns(reference, width)


def _pad_columns(matrix: np.ndarray, width: int) -> np.ndarray:
    return np.pad(matrix, ((0, 0), (0, width - matrix.shape[1])))


def knn_multilabel_f1(
    embeddings: ArrayLike,
    labels: ArrayLike,
    k: int = 10,
    reference_embeddings: ArrayLike | None = None,
    reference_labels: ArrayLike | None = None,
    at_least_one: bool = True,
) -> dict[str, float]:
    """Micro and macro F1 of a similarity-weighted cosine kNN vote.

    ``labels`` (and ``reference_labels``) are multi-hot ``[n, L]`` or 1-D class ids. Each query
    takes the labels carrying more than half of its ``k`` neighbours' vote weight and, with
    ``at_least_one`` (for data where every example has a label), its top-voted label in any case.
    Without a reference set, every embedding is classified by the others (leave-one-out).
    Returns ``{"micro_f1", "macro_f1"}`` (macro over labels present in truth or prediction).
    """
    y_true = as_label_matrix(labels, "labels")
    embeddings_array = as_matrix(embeddings, "embeddings")
    check_same_rows(embeddings_array, y_true, "embeddings", "labels")
    reference = _reference_labels(y_true, reference_labels, reference_embeddings)
    if reference_embeddings is not None:
        check_same_rows(
            as_matrix(reference_embeddings, "reference_embeddings"),
            reference,
            "reference_embeddings",
            "reference_labels",
        )
    neighbours = nearest_neighbours(embeddings_array, k, reference_embeddings)
    y_true = _pad_columns(y_true, reference.shape[1])
    return f1_summary(y_true, multi_label_vote(neighbours, reference, at_least_one))


def map_at_r(embeddings: ArrayLike, labels: ArrayLike) -> float:
    """Mean average precision at R (Musgrave, Belongie & Lim, "A Metric Learning Reality Check", 2020).

    For each query, the relevant items are the other items that share at least one label with it
    (multi-hot ``labels``; 1-D class ids mean "same class"), ``R`` is their number, and

    .. math:: \\mathrm{MAP@R} = \\frac{1}{R} \\sum_{i=1}^{R} P(i)\\,\\mathrm{rel}(i)

    over the ``R`` nearest items by cosine similarity. Queries with no relevant item are skipped.
    """
    y = as_label_matrix(labels, "labels").astype(np.float32)
    queries, _, _ = _query_and_reference(embeddings, None)
    check_same_rows(queries, y, "embeddings", "labels")
    total, counted = 0.0, 0
    for start, stop in chunk_bounds(queries.shape[0], queries.shape[0]):
        precisions, has_relevant = _average_precisions_at_r(queries, y, start, stop)
        total += float(precisions[has_relevant].sum())
        counted += int(has_relevant.sum())
    if counted == 0:
        raise HierconError("map_at_r: no item shares a label with any other item, so MAP@R is undefined")
    return total / counted


def _average_precisions_at_r(
    embeddings: np.ndarray, labels: np.ndarray, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    similarities = _chunk_similarities(embeddings, embeddings, start, stop, leave_one_out=True)
    relevant = (labels[start:stop] @ labels.T) > 0
    rows = np.arange(stop - start)
    relevant[rows, start + rows] = False
    r = relevant.sum(axis=1)
    has_relevant = r > 0
    if not has_relevant.any():
        return np.zeros(stop - start), has_relevant
    ranked = np.take_along_axis(relevant, _top_columns(similarities, int(r.max())), axis=1)
    ranks = np.arange(1, ranked.shape[1] + 1)
    within_r = ranks[None, :] <= r[:, None]
    hits = ranked & within_r
    precision_at_rank = np.cumsum(hits, axis=1) / ranks[None, :]
    return (precision_at_rank * hits).sum(axis=1) / np.maximum(r, 1), has_relevant


def _levels_as_dict(
    labels_per_level: Sequence[ArrayLike] | Mapping[str, ArrayLike] | ArrayLike,
    level_names: Sequence[str] | None,
) -> dict[str, np.ndarray]:
    if isinstance(labels_per_level, Mapping):
        return {
            str(name): to_numpy(values, f"labels of level {name!r}")
            for name, values in labels_per_level.items()
        }
    if hasattr(labels_per_level, "shape"):  # one [n, num_levels] array of class ids, a column per level
        matrix = to_numpy(labels_per_level, "labels_per_level")
        if matrix.ndim != 2:
            raise HierconError(f"labels_per_level as one array must be [n, num_levels], got {matrix.shape}")
        levels = [matrix[:, column] for column in range(matrix.shape[1])]
    else:
        levels = [to_numpy(values, f"labels_per_level[{i}]") for i, values in enumerate(labels_per_level)]
    names = list(level_names) if level_names is not None else [f"level_{i}" for i in range(len(levels))]
    if len(names) != len(levels):
        raise HierconError(f"{len(names)} level_names for {len(levels)} levels of labels")
    return dict(zip(names, levels))


def knn_level_accuracy(
    embeddings: ArrayLike,
    labels_per_level: Sequence[ArrayLike] | Mapping[str, ArrayLike] | ArrayLike,
    k: int = 10,
    reference_embeddings: ArrayLike | None = None,
    reference_labels_per_level: Sequence[ArrayLike] | Mapping[str, ArrayLike] | ArrayLike | None = None,
    level_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """kNN quality at each taxonomy level from one neighbour search.

    ``labels_per_level`` is a list (or ``{name: labels}`` dict) with one entry per level, or one
    ``[n, num_levels]`` array of class ids (a column per level). A level given as 1-D class ids
    scores the weighted majority vote by accuracy (``"<level>_accuracy"``); a level given as a
    multi-hot matrix scores the multi-label vote of :func:`knn_multilabel_f1` (top-voted label
    always predicted) by ``"<level>_micro_f1"`` and ``"<level>_macro_f1"``.
    """
    if (reference_embeddings is None) != (reference_labels_per_level is None):
        raise HierconError("reference_embeddings and reference_labels_per_level must be given together")
    levels = _levels_as_dict(labels_per_level, level_names)
    references = (
        levels
        if reference_labels_per_level is None
        else _levels_as_dict(reference_labels_per_level, list(levels))
    )
    neighbours = nearest_neighbours(embeddings, k, reference_embeddings)
    results: dict[str, float] = {}
    for name, truth in levels.items():
        if truth.shape[0] != neighbours.indices.shape[0]:
            raise HierconError(
                f"level {name!r} has {truth.shape[0]} labels for {neighbours.indices.shape[0]} embeddings"
            )
        results.update(_score_level(name, truth, references[name], neighbours))
    return results


def _score_level(
    name: str, truth: np.ndarray, reference: np.ndarray, neighbours: Neighbours
) -> dict[str, float]:
    if truth.ndim == 1:
        true_ids = as_class_ids(truth, f"labels of level {name!r}")
        predicted = class_vote(neighbours, as_class_ids(reference, f"reference labels of level {name!r}"))
        return {f"{name}_accuracy": float((predicted == true_ids).mean())}
    y_true = as_label_matrix(truth, f"labels of level {name!r}")
    y_reference = as_label_matrix(reference, f"reference labels of level {name!r}")
    width = max(y_true.shape[1], y_reference.shape[1])
    predicted = multi_label_vote(neighbours, _pad_columns(y_reference, width))
    summary = f1_summary(_pad_columns(y_true, width), predicted)
    return {f"{name}_{metric}": value for metric, value in summary.items()}
