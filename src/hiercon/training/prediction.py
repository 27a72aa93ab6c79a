"""Embeddings of a dataset through ``transformers.Trainer.predict``.

Prediction runs in evaluation mode (no dropout, no augmented views), in dataset order, in batches on
the model's device, and gathers the rows of every process when the run is distributed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import Trainer, TrainingArguments

from hiercon.errors import ConfigError

#: The columns a contrastive model reads; prediction keeps only these (labels are not needed).
MODEL_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")
#: Outputs of :class:`~hiercon.modeling.ContrastiveModel` besides the embeddings.
NON_EMBEDDING_OUTPUTS = ["pooled"]


def model_inputs_only(dataset: Any, keep: Sequence[str] = ()) -> Any:
    """``dataset`` with only the model's input columns and those named in ``keep`` (a
    ``datasets.Dataset``; anything else as is)."""
    if not hasattr(dataset, "column_names"):
        return dataset
    wanted = [*MODEL_INPUT_COLUMNS, *keep]
    return dataset.select_columns([column for column in dataset.column_names if column in wanted])


def embeddings_of(output: Any, expected_rows: int) -> np.ndarray:
    """The ``[n, d]`` float32 embeddings in a ``PredictionOutput`` (the first array of a tuple)."""
    predictions = output.predictions
    while isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    if predictions is None:
        raise ConfigError("prediction returned no embeddings (is prediction_loss_only set in the TrainingArguments?)")
    embeddings = np.asarray(predictions, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != expected_rows:
        raise ConfigError(
            f"prediction returned embeddings of shape {embeddings.shape} for {expected_rows} rows "
            "(dataloader_drop_last drops rows; turn it off for prediction)"
        )
    return embeddings


def predict_embeddings(
    model: Any, dataset: Any, data_collator: Any = None, batch_size: int = 64
) -> np.ndarray:
    """``[n, d]`` embeddings of ``dataset`` by a :class:`~hiercon.modeling.ContrastiveModel` (one view,
    evaluation mode), from ``transformers.Trainer.predict`` on the model's device.

    It builds its own ``Trainer``, so call it outside a running training loop (a callback predicts with
    the running trainer instead).
    """
    device = next(model.parameters()).device
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=batch_size,
            report_to="none",
            remove_unused_columns=False,
            use_cpu=device.type == "cpu",
        )
        trainer = Trainer(model=model, args=args, data_collator=data_collator)
        output = trainer.predict(model_inputs_only(dataset), ignore_keys=NON_EMBEDDING_OUTPUTS)
    return embeddings_of(output, len(dataset))
