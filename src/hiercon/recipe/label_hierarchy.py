"""A label hierarchy learned from the encoder's embeddings (``data.taxonomy: {kmeans: [k1, k2]}``).

Each label is represented by the mean of the L2-normalised embeddings of the training examples that
hold it, embedded by the untrained encoder (its pooled output, no projection head) in evaluation mode;
hierarchical k-means over these label vectors (:func:`hiercon.taxonomy.data_driven.kmeans_label_taxonomy`)
gives the levels, and the labels become the leaves under the cluster nodes ``"l<level>:c<k>"``. A label
without training examples takes the mean of all training embeddings. Every split's ``labels`` is then
encoded over the new taxonomy, keeping the data's label-space kind (nodes or leaves).

Building the hierarchy costs one forward pass of the encoder over the training split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import set_seed

from hiercon.recipe.arguments import RecipeArguments
from hiercon.recipe.data import LABELS, RecipeData, cooccurrence_taxonomy, relabelled
from hiercon.recipe.hierarchy_spec import KMEANS, HierarchySpec, parse_spec
from hiercon.recipe.inputs import load_encoder, model_inputs
from hiercon.taxonomy import LabelTaxonomy

logger = logging.getLogger(__name__)


def label_vectors(embeddings: np.ndarray, multi_hot: np.ndarray) -> np.ndarray:
    """``[C, d]``: per label column of ``multi_hot`` ``[n, C]``, the mean of the L2-normalised
    ``embeddings`` ``[n, d]`` of the rows holding it (the mean of all rows for a label held by none)."""
    points = np.asarray(embeddings, dtype=np.float64)
    points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    holders = np.asarray(multi_hot, dtype=np.float64) > 0.5
    counts = holders.sum(axis=0)
    sums = holders.T.astype(np.float64) @ points
    vectors = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], points.mean(axis=0))
    return vectors


def label_vector_taxonomy(
    embeddings: np.ndarray, multi_hot: np.ndarray, names: Sequence[str], spec: HierarchySpec, seed: int = 0
) -> LabelTaxonomy:
    """The labels ``names`` (the columns of ``multi_hot``) as leaves under hierarchical k-means clusters of
    their label vectors (:func:`label_vectors`), with the cluster counts of ``spec``."""
    from hiercon.taxonomy.data_driven import kmeans_label_taxonomy

    counts = spec.counts(len(names))
    missing = [name for name, held in zip(names, np.asarray(multi_hot).any(axis=0)) if not held]
    if missing:
        logger.warning(
            "%d labels have no training examples and are placed by the mean training embedding: %s",
            len(missing),
            missing[:10],
        )
    return kmeans_label_taxonomy(label_vectors(embeddings, multi_hot), names, counts, seed=seed)


def untrained_embeddings(
    args: RecipeArguments, train: Dataset, processor: Any, encoder_config: Any
) -> np.ndarray:
    """``[n, d]`` embeddings of the training split by the untrained encoder (pooled, L2-normalised)."""
    from accelerate import PartialState

    from hiercon.modeling import ContrastiveModel
    from hiercon.training import ContrastiveDataCollator
    from hiercon.training.prediction import predict_embeddings

    set_seed(args.output.seed)
    model = ContrastiveModel(load_encoder(args.model), args.model.pooling, projection_dim=None)
    model.to(PartialState().device)
    inputs = model_inputs(train, processor, args.data, args.model, encoder_config, "train")
    collator = ContrastiveDataCollator(processor if hasattr(processor, "pad") else None)
    return predict_embeddings(model, inputs, collator, args.stage2.per_device_eval_batch_size)


def with_learned_hierarchy(
    args: RecipeArguments, data: RecipeData, processor: Any, encoder_config: Any
) -> RecipeData:
    """``data`` over a hierarchy built from the encoder's embeddings when ``data.taxonomy`` asks for
    ``kmeans``; otherwise ``data`` as it is."""
    spec = parse_spec(args.data.taxonomy)
    if spec is None or spec.method != KMEANS:
        return data
    names = data.label_space.names
    spec.counts(len(names))
    embeddings = untrained_embeddings(args, data.train, processor, encoder_config)
    multi_hot = np.asarray(data.train[LABELS], dtype=np.float32).reshape(len(data.train), len(names))
    taxonomy = label_vector_taxonomy(embeddings, multi_hot, names, spec, seed=args.output.seed)
    logger.info("learned a %d-level hierarchy above %d labels by k-means", taxonomy.num_levels, len(names))
    return relabelled(data, taxonomy)


def with_stand_in_hierarchy(args: RecipeArguments, data: RecipeData) -> RecipeData:
    """``data`` over a hierarchy of the shape ``data.taxonomy: {kmeans: ...}`` asks for, built from label
    co-occurrence instead of the encoder, so that the checks of the loss and its clusters see as many
    levels as training will (``hiercon check`` embeds nothing); otherwise ``data`` as it is."""
    spec = parse_spec(args.data.taxonomy)
    if spec is None or spec.method != KMEANS:
        return data
    names = data.label_space.names
    multi_hot = np.asarray(data.train[LABELS], dtype=np.float32).reshape(len(data.train), len(names))
    return relabelled(data, cooccurrence_taxonomy(multi_hot, names, spec))
