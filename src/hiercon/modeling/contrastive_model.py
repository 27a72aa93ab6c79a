"""A transformers encoder + pooling + projection head, trained by contrastive losses (stage 1).

Saved layout (``save_pretrained``)::

    config.json, model.safetensors     the encoder, exactly as a plain transformers model
                                       (with LoRA: the frozen base encoder)
    adapter/                           the LoRA adapter (peft format), only with LoRA
    projection_head.safetensors        the projection head's weights
    hiercon_contrastive.json           pooling, dimensions, base model, modality, peft and loss info

``AutoModel.from_pretrained(folder)`` therefore gives the encoder back, and
``ContrastiveModel.from_pretrained(folder)`` the whole model.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from hiercon.errors import ConfigError
from hiercon.modality import IMAGE, IMAGE_INPUT, TEXT, Modality, input_modality
from hiercon.modeling.adapters import (
    adapter_record,
    apply_lora,
    base_model_of,
    is_peft,
    load_adapter,
    load_adapter_weights,
    merge_lora,
    save_base_and_adapter,
)
from hiercon.modeling.pooling import pool, resolve_pooling, start_pooler

CONTRASTIVE_CONFIG_NAME = "hiercon_contrastive.json"
HEAD_WEIGHTS_NAME = "projection_head.safetensors"
ENCODER_WEIGHTS_NAME = "model.safetensors"
ADAPTER_FOLDER = "adapter"
_TEXT_INPUTS = ("input_ids", "inputs_embeds")


@dataclass
class ContrastiveModelConfig:
    """What ``ContrastiveModel.from_pretrained`` needs besides the weights."""

    pooling: str
    hidden_size: int
    projection_dim: int | None
    projection_hidden_dim: int | None
    base_model: str
    modality: Modality
    peft: dict[str, Any] | None = None
    loss: dict[str, Any] | None = None
    format_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ContrastiveModelConfig:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass
class ContrastiveOutput(ModelOutput):
    """``embeddings``: L2-normalised projections ``[B, projection_dim]``; ``pooled``: pooled encoder
    features ``[B, hidden_size]``."""

    embeddings: torch.Tensor | None = None
    pooled: torch.Tensor | None = None


class ProjectionHead(nn.Module):
    """``Linear -> ReLU -> Linear`` to ``projection_dim``, or the identity when ``projection_dim`` is None."""

    def __init__(
        self, hidden_size: int, projection_dim: int | None, projection_hidden_dim: int | None
    ) -> None:
        super().__init__()
        if projection_dim is None:
            self.layers: nn.Module = nn.Identity()
        else:
            inner = projection_hidden_dim or hidden_size
            self.layers = nn.Sequential(
                nn.Linear(hidden_size, inner), nn.ReLU(), nn.Linear(inner, projection_dim)
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def _check_projection_dim(projection_dim: int | str | None) -> int | None:
    if projection_dim is None or (isinstance(projection_dim, str) and projection_dim.lower() == "none"):
        return None
    if isinstance(projection_dim, bool) or not isinstance(projection_dim, int) or projection_dim < 1:
        raise ConfigError(f"projection_dim must be a positive integer or 'none', got {projection_dim!r}")
    return projection_dim


class ContrastiveModel(nn.Module):
    """An ``AutoModel`` encoder (text or vision), a pooling and a projection head with L2-normalised output.

    ``forward(**inputs)`` returns a :class:`ContrastiveOutput`; ``encode(**inputs)`` the pooled
    features without the head; ``.encoder`` is the plain transformers model (a peft model with LoRA).
    """

    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True

    def __init__(
        self,
        encoder: nn.Module,
        pooling: str = "auto",
        projection_dim: int | str | None = 128,
        projection_hidden_dim: int | None = None,
        base_model: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module) or getattr(encoder, "config", None) is None:
            raise ConfigError(
                f"encoder must be a transformers model with a config, got {type(encoder).__name__}"
            )
        self.encoder = encoder
        hidden_size = self._hidden_size(encoder)
        projection = _check_projection_dim(projection_dim)
        self.head = ProjectionHead(hidden_size, projection, projection_hidden_dim)
        self.contrastive_config = ContrastiveModelConfig(
            pooling=resolve_pooling(pooling, encoder),
            hidden_size=hidden_size,
            projection_dim=projection,
            projection_hidden_dim=projection_hidden_dim if projection is not None else None,
            base_model=base_model or getattr(encoder.config, "_name_or_path", "") or "",
            modality=input_modality(encoder),
            peft=adapter_record(encoder),
        )
        self.main_input_name = IMAGE_INPUT if self.modality == IMAGE else "input_ids"

    @staticmethod
    def _hidden_size(encoder: nn.Module) -> int:
        config = encoder.config
        size = getattr(config, "hidden_size", None)
        if size is None and isinstance(getattr(config, "hidden_sizes", None), (list, tuple)):
            size = config.hidden_sizes[-1]
        if not isinstance(size, int):
            raise ConfigError(f"cannot read the hidden size of a {type(encoder).__name__} from its config")
        return size

    # ---- construction ----

    @classmethod
    def from_encoder(
        cls,
        path_or_model: str | os.PathLike | PreTrainedModel,
        pooling: str = "auto",
        projection_dim: int | str | None = 128,
        projection_hidden_dim: int | None = None,
        peft_config: Any = None,
        identity_pooler: str | bool = "auto",
        **from_pretrained_kwargs: Any,
    ) -> ContrastiveModel:
        """Wrap an encoder given as a model, a local folder or a Hub id (loaded with ``AutoModel``).

        ``peft_config`` (e.g. a ``peft.LoraConfig``) wraps the encoder with a LoRA adapter
        (:func:`~hiercon.modeling.adapters.apply_lora`). ``identity_pooler`` starts the encoder's
        pooler as the identity: ``"auto"`` when the classification head reads the pooler and the
        checkpoint's pooler is untrained (:func:`~hiercon.modeling.pooling.start_pooler`), or
        always (``True``) or never (``False``).
        """
        if "trust_remote_code" in from_pretrained_kwargs:
            raise ConfigError(
                "trust_remote_code is not supported; use an architecture shipped with transformers"
            )
        missing_keys: list[str] = []
        if isinstance(path_or_model, (str, os.PathLike)):
            encoder, info = AutoModel.from_pretrained(
                path_or_model, output_loading_info=True, **from_pretrained_kwargs
            )
            missing_keys = list(info.get("missing_keys", ()))
            base_model = str(path_or_model)
        elif isinstance(path_or_model, nn.Module):
            encoder = path_or_model
            base_model = getattr(getattr(encoder, "config", None), "_name_or_path", "") or ""
        else:
            raise ConfigError(
                f"path_or_model must be a path, a Hub id or a transformers model, got {type(path_or_model).__name__}"
            )
        start_pooler(encoder, identity_pooler, missing_keys)
        if peft_config is not None:
            encoder = apply_lora(encoder, peft_config)
        return cls(encoder, pooling, projection_dim, projection_hidden_dim, base_model=base_model)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **from_pretrained_kwargs: Any) -> ContrastiveModel:
        """Restore a model written by :meth:`save_pretrained`."""
        folder = Path(folder)
        config_path = folder / CONTRASTIVE_CONFIG_NAME
        if not config_path.is_file():
            raise ConfigError(
                f"{folder} holds no {CONTRASTIVE_CONFIG_NAME}; it was not saved by ContrastiveModel"
            )
        config = ContrastiveModelConfig.from_dict(json.loads(config_path.read_text()))
        encoder = AutoModel.from_pretrained(folder, **from_pretrained_kwargs)
        if (folder / ADAPTER_FOLDER).is_dir():
            encoder = load_adapter(encoder, folder / ADAPTER_FOLDER)
        model = cls(
            encoder, config.pooling, config.projection_dim, config.projection_hidden_dim, config.base_model
        )
        model.contrastive_config.peft = config.peft
        model.contrastive_config.loss = config.loss
        model.contrastive_config.extra = config.extra
        model.load_head(folder)
        return model

    # ---- properties ----

    @property
    def config(self) -> Any:
        """The encoder's transformers config."""
        return self.encoder.config

    @property
    def modality(self) -> Modality:
        """``"text"`` or ``"image"``: what the encoder reads (:func:`~hiercon.modality.input_modality`)."""
        return input_modality(self.encoder)

    @property
    def pooling(self) -> str:
        return self.contrastive_config.pooling

    @property
    def embedding_dim(self) -> int:
        return self.contrastive_config.projection_dim or self.contrastive_config.hidden_size

    @property
    def is_peft(self) -> bool:
        return is_peft(self.encoder)

    @property
    def loss_info(self) -> dict[str, Any] | None:
        return self.contrastive_config.loss

    @loss_info.setter
    def loss_info(self, info: dict[str, Any] | None) -> None:
        self.contrastive_config.loss = info

    def stage1_info(self) -> dict[str, Any]:
        """The ``stage1`` record of a classifier's ``config.hiercon``."""
        loss = self.contrastive_config.loss or {}
        return {
            "loss": loss.get("loss"),
            "loss_config": loss.get("loss_config", {}),
            "citation": loss.get("citation", ""),
            "pooling": self.pooling,
            "base_model": self.contrastive_config.base_model,
            "peft": self.contrastive_config.peft,
        }

    # ---- forward ----

    def check_inputs(self, inputs: dict[str, Any]) -> None:
        """Refuse inputs of the wrong modality with an error that says what the encoder needs."""
        has_text = any(inputs.get(name) is not None for name in _TEXT_INPUTS)
        has_pixels = inputs.get(IMAGE_INPUT) is not None
        if self.modality == IMAGE and (has_text or not has_pixels):
            given = (
                "text inputs (input_ids)"
                if has_text
                else f"only {sorted(k for k in inputs if inputs[k] is not None)}"
            )
            raise ConfigError(f"this vision encoder needs 'pixel_values', but it was given {given}")
        if self.modality == TEXT and (has_pixels or not has_text):
            given = (
                "pixel_values" if has_pixels else f"only {sorted(k for k in inputs if inputs[k] is not None)}"
            )
            raise ConfigError(f"this text encoder needs 'input_ids', but it was given {given}")

    def encode(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **encoder_kwargs: Any,
    ) -> torch.Tensor:
        """Pooled encoder features ``[B, hidden_size]`` (no projection head, not normalised)."""
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "pixel_values": pixel_values,
            **encoder_kwargs,
        }
        self.check_inputs(inputs)
        inputs = {key: value for key, value in inputs.items() if value is not None}
        outputs = self.encoder(**inputs, return_dict=True)
        return pool(outputs, self.pooling, attention_mask if self.modality == TEXT else None)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **encoder_kwargs: Any,
    ) -> ContrastiveOutput:
        pooled = self.encode(input_ids, attention_mask, token_type_ids, pixel_values, **encoder_kwargs)
        embeddings = F.normalize(self.head(pooled), dim=-1)
        return ContrastiveOutput(embeddings=embeddings, pooled=pooled)

    # ---- training switches ----

    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict[str, Any] | None = None
    ) -> None:
        """Turn on the encoder's gradient checkpointing (non-reentrant unless told otherwise)."""
        kwargs = (
            {"use_reentrant": False}
            if gradient_checkpointing_kwargs is None
            else gradient_checkpointing_kwargs
        )
        base_model_of(self.encoder).gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def gradient_checkpointing_disable(self) -> None:
        base_model_of(self.encoder).gradient_checkpointing_disable()

    @property
    def is_gradient_checkpointing(self) -> bool:
        return bool(getattr(base_model_of(self.encoder), "is_activation_checkpointing", False))

    # ---- LoRA ----

    def merged_encoder(self) -> nn.Module:
        """A plain transformers encoder with any LoRA adapter merged in (a copy; ``self`` is unchanged)."""
        return merge_lora(self.encoder)

    def merge_adapter(self) -> None:
        """Merge the LoRA adapter into the encoder in place; the peft config stays recorded."""
        if self.is_peft:
            self.encoder = merge_lora(self.encoder, in_place=True)
            if self.contrastive_config.peft is not None:
                self.contrastive_config.peft = {**self.contrastive_config.peft, "merged": True}

    # ---- saving ----

    def save_pretrained(self, folder: str | os.PathLike, is_main_process: bool = True, **_: Any) -> None:
        """Write the encoder (plain transformers layout), the adapter, the head and the JSON config."""
        if not is_main_process:
            return
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.is_peft:
            save_base_and_adapter(self.encoder, folder, ADAPTER_FOLDER)
        else:
            self.encoder.save_pretrained(folder)
        head_state = {key: value.detach().contiguous() for key, value in self.head.state_dict().items()}
        save_file(head_state, str(folder / HEAD_WEIGHTS_NAME), metadata={"format": "pt"})
        (folder / CONTRASTIVE_CONFIG_NAME).write_text(json.dumps(asdict(self.contrastive_config), indent=2))

    def load_head(self, folder: str | os.PathLike) -> None:
        path = Path(folder) / HEAD_WEIGHTS_NAME
        if not path.is_file():
            raise ConfigError(f"{folder} holds no {HEAD_WEIGHTS_NAME}")
        self.head.load_state_dict(load_file(str(path)))

    def load_weights(self, folder: str | os.PathLike) -> None:
        """Load the weights saved in ``folder`` into this model in place (used to resume training)."""
        folder = Path(folder)
        if self.is_peft:
            load_adapter_weights(self.encoder, folder / ADAPTER_FOLDER)
        else:
            weights = folder / ENCODER_WEIGHTS_NAME
            if not weights.is_file():
                raise ConfigError(f"{folder} holds no encoder weights ({ENCODER_WEIGHTS_NAME})")
            missing, unexpected = self.encoder.load_state_dict(load_file(str(weights)), strict=False)
            persistent = {name for name, _ in self.encoder.named_parameters()}
            missing = [name for name in missing if name in persistent]
            if missing or unexpected:
                raise ConfigError(
                    f"encoder weights in {folder} do not fit the model: missing {missing[:5]}, "
                    f"unexpected {list(unexpected)[:5]}"
                )
        self.load_head(folder)
