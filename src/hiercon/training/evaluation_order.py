"""Evaluation and prediction in dataset order.

``transformers.Trainer`` also length-groups evaluation batches when
``train_sampling_strategy="group_by_length"``, so ``predict`` returns rows in a shuffled order and
scores no longer line up with the dataset they came from. hiercon's trainers evaluate in order.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Sampler, SequentialSampler
from transformers.trainer_utils import has_length


class DatasetOrderEvaluation:
    """Trainer mixin: evaluation batches follow the dataset's order (training sampling is unchanged)."""

    args: Any

    def _get_eval_sampler(self, eval_dataset: Any) -> Sampler | None:
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        if self.args.world_size <= 1:
            return SequentialSampler(eval_dataset)
        return None
