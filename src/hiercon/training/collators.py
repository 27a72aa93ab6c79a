"""Batch collation for contrastive training: padded model inputs plus label columns as tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hiercon.errors import ConfigError
from hiercon.taxonomy.label_space import LabelSpace

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_RENAMED_LABELS = {"label": "labels", "label_ids": "labels"}


def _as_tensor(name: str, values: list[Any]) -> torch.Tensor:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    try:
        array = np.asarray(values)
    except ValueError as error:
        raise ConfigError(f"column {name!r} has rows of different shapes; cannot make a batch") from error
    if array.dtype.kind not in "biuf":
        raise ConfigError(
            f"column {name!r} holds {array.dtype} values; only numbers can be batched "
            "(encode label names first, e.g. with LabelTaxonomy.encode)"
        )
    return torch.from_numpy(array.astype(np.float32) if array.dtype.kind == "f" else array.astype(np.int64))


class ContrastiveDataCollator:
    """Pads text inputs with the tokenizer (when given), stacks ``pixel_values`` and turns every
    other numeric column (labels, label paths, example indices...) into a tensor.

    ``label``/``label_ids`` are renamed ``labels`` as transformers' collators do. With a
    ``label_space``, the ``label_column`` in any format it reads (names, paths, ids, multi-hot over
    the nodes or the leaves) becomes its float multi-hot ``[B, C]``; integer class ids stay ids.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        pad_to_multiple_of: int | None = None,
        label_space: LabelSpace | None = None,
        label_column: str = "labels",
    ) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.label_space = label_space
        self.label_column = label_column

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ConfigError("cannot collate an empty batch")
        names = [name for name in features[0] if features[0][name] is not None]
        batch: dict[str, torch.Tensor] = {}
        text_names = [name for name in names if name in TEXT_INPUTS]
        if text_names:
            batch.update(self._pad_text([{name: f[name] for name in text_names} for f in features]))
        for name in names:
            if name in TEXT_INPUTS:
                continue
            values = [f[name] for f in features]
            is_labels = self.label_space is not None and _RENAMED_LABELS.get(name, name) == self.label_column
            batch[_RENAMED_LABELS.get(name, name)] = self._labels(values) if is_labels else _as_tensor(name, values)
        return batch

    def _labels(self, values: list[Any]) -> torch.Tensor:
        first = values[0]
        if isinstance(first, (int, np.integer)) or (torch.is_tensor(first) and first.dim() == 0):
            return _as_tensor(self.label_column, values)
        return torch.as_tensor(self.label_space.multi_hot(values, self.label_column))

    def _pad_text(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.tokenizer is not None and hasattr(self.tokenizer, "pad"):
            padded = self.tokenizer.pad(
                features, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
            )
            return dict(padded)
        lengths = {len(f["input_ids"]) for f in features}
        if len(lengths) > 1:
            raise ConfigError(
                "text inputs of different lengths need a tokenizer (processing_class) to pad them"
            )
        return {name: _as_tensor(name, [f[name] for f in features]) for name in features[0]}
