"""Token limits of a text model: the one its tokenizer records, or the one its position embeddings allow.

A tokenizer saved without a limit reports a huge ``model_max_length`` (transformers' "no limit"
value); ``truncation=True`` then truncates nothing and a long text overruns the position
embeddings. hiercon saves every tokenizer with the training ``max_length`` as its limit, so that
``pipeline(..., truncation=True)`` truncates like training did, and reads that limit back at
inference.
"""

from __future__ import annotations

import copy
from typing import Any

#: A ``model_max_length`` at or above this is transformers' "no limit" value, not a real limit.
UNSET_LIMIT = 10**9
#: Model types whose position ids start after the padding index (RoBERTa's layout): they can read
#: ``max_position_embeddings - pad_token_id - 1`` tokens.
PADDING_OFFSET_MODELS = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "mpnet", "data2vec-text", "xmod"}
)


def tokenizer_limit(tokenizer: Any) -> int | None:
    """The tokenizer's ``model_max_length`` when it is a real limit, else None."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < UNSET_LIMIT:
        return limit
    return None


def position_limit(config: Any) -> int | None:
    """The most tokens the model's position embeddings can read, or None when the config does not say."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    if getattr(config, "model_type", None) in PADDING_OFFSET_MODELS:
        positions -= int(getattr(config, "pad_token_id", 0) or 0) + 1
    return positions if positions > 0 else None


def inference_max_length(tokenizer: Any, config: Any) -> int | None:
    """The length to truncate to at inference: the tokenizer's recorded limit, else the position limit."""
    return tokenizer_limit(tokenizer) or position_limit(config)


def with_max_length(processor: Any, max_length: int) -> Any:
    """``processor`` with ``model_max_length = max_length`` when it is a tokenizer (set in place);
    an image processor is returned unchanged."""
    if processor is not None and hasattr(processor, "model_max_length"):
        processor.model_max_length = int(max_length)
    return processor


def bounded_tokenizer(processor: Any, config: Any) -> Any:
    """What to save beside a model: a tokenizer without a limit gets a copy bounded by the model's
    position limit; anything else (a bounded tokenizer, an image processor) is returned as it is."""
    if processor is None or not hasattr(processor, "model_max_length") or tokenizer_limit(processor):
        return processor
    limit = position_limit(config)
    return processor if limit is None else with_max_length(copy.deepcopy(processor), limit)
