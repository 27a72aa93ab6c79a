"""Views of a batch for contrastive training.

Every view maker turns a model-input dict of ``B`` examples into one of ``V * B`` rows, stacked
view-major (rows ``v * B .. v * B + B - 1`` are view ``v``), so that a single forward pass embeds
all views (one forward per step keeps DistributedDataParallel and gradient checkpointing simple).
:func:`split_views` turns the ``[V * B, d]`` embeddings back into the ``[B, V, d]`` a loss expects.

- Text: :class:`DropoutViews` repeats the batch; the encoder's dropout in train mode makes the
  copies differ (SimCSE, Gao et al. 2021). ``num_views=1`` is the single-view setting.
- Vision: :class:`AugmentedViews` applies seeded pure-torch augmentations (random resized crop via
  an affine sampling grid, horizontal flip, brightness/contrast jitter, gaussian noise) to
  ``pixel_values`` that the image processor has already normalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hiercon.errors import ConfigError
from hiercon.modality import IMAGE, TEXT, Modality


def split_views(embeddings: torch.Tensor, num_views: int) -> torch.Tensor:
    """``[V * B, d]`` view-major rows -> ``[B, V, d]``."""
    rows, dim = embeddings.shape
    if rows % num_views:
        raise ConfigError(f"{rows} embedding rows cannot be split into {num_views} views")
    return embeddings.reshape(num_views, rows // num_views, dim).transpose(0, 1)


def _check_num_views(num_views: int) -> int:
    if not isinstance(num_views, int) or isinstance(num_views, bool) or num_views < 1:
        raise ConfigError(f"num_views must be a positive integer, got {num_views!r}")
    return num_views


class DropoutViews:
    """Text views: the batch repeated ``num_views`` times (dropout makes the copies differ)."""

    def __init__(self, num_views: int = 2) -> None:
        self.num_views = _check_num_views(num_views)

    def __call__(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.num_views == 1:
            return inputs
        return {
            key: value.repeat(self.num_views, *([1] * (value.dim() - 1)))
            if isinstance(value, torch.Tensor)
            else value
            for key, value in inputs.items()
        }


@dataclass
class AugmentationConfig:
    """Pure-torch image augmentations applied to normalised ``pixel_values``.

    ``crop_scale``/``crop_ratio``: area fraction and aspect-ratio range of the random resized crop
    (resampled to the input size); ``flip_probability``: horizontal flip; ``brightness``: additive
    shift drawn from ``U(-b, b)`` (in normalised units); ``contrast``: factor drawn from
    ``U(1 - c, 1 + c)`` around each image's mean; ``noise_std``: gaussian noise.
    """

    crop_scale: tuple[float, float] = (0.4, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_probability: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    noise_std: float = 0.05

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ConfigError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not 0 <= self.flip_probability <= 1:
            raise ConfigError(f"flip_probability must lie in [0, 1], got {self.flip_probability}")
        for name in ("brightness", "contrast", "noise_std"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


class AugmentedViews:
    """Vision views: ``num_views`` independently augmented copies of ``pixel_values``.

    Randomness comes from a ``torch.Generator`` seeded with ``seed`` (one per device), so a run is
    reproducible and the views do not consume the global RNG.
    """

    def __init__(self, num_views: int = 2, config: AugmentationConfig | None = None, seed: int = 0) -> None:
        self.num_views = _check_num_views(num_views)
        self.config = config or AugmentationConfig()
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            self._generators[key] = generator
        return self._generators[key]

    def __call__(self, inputs: dict[str, Any]) -> dict[str, Any]:
        pixels = inputs.get("pixel_values")
        if not isinstance(pixels, torch.Tensor) or pixels.dim() != 4:
            raise ConfigError("image views need 'pixel_values' of shape [batch, channels, height, width]")
        views = [self.augment(pixels) for _ in range(self.num_views)]
        return {**inputs, "pixel_values": torch.cat(views, dim=0)}

    def augment(self, pixels: torch.Tensor) -> torch.Tensor:
        """One augmented copy of a ``[B, C, H, W]`` batch."""
        generator = self.generator(pixels.device)
        out = self._resized_crop_and_flip(pixels, generator)
        return self._jitter(out, generator)

    def _uniform(self, n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, device=device)

    def _resized_crop_and_flip(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, device, cfg = pixels.shape[0], pixels.device, self.config
        area = self._uniform(batch, *cfg.crop_scale, generator, device)
        log_ratio = self._uniform(
            batch, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), generator, device
        )
        ratio = log_ratio.exp()
        width = (area * ratio).sqrt().clamp(max=1.0)
        height = (area / ratio).sqrt().clamp(max=1.0)
        # The crop's centre, in [-1, 1] grid coordinates, keeps the crop inside the image.
        centre_x = (1 - width) * (2 * torch.rand(batch, generator=generator, device=device) - 1)
        centre_y = (1 - height) * (2 * torch.rand(batch, generator=generator, device=device) - 1)
        flip = torch.rand(batch, generator=generator, device=device) < cfg.flip_probability
        sign = torch.where(flip, -1.0, 1.0).to(pixels.dtype)
        theta = torch.zeros(batch, 2, 3, device=device, dtype=pixels.dtype)
        theta[:, 0, 0] = width.to(pixels.dtype) * sign
        theta[:, 0, 2] = centre_x.to(pixels.dtype)
        theta[:, 1, 1] = height.to(pixels.dtype)
        theta[:, 1, 2] = centre_y.to(pixels.dtype)
        grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
        return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _jitter(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, device, cfg = pixels.shape[0], pixels.device, self.config
        shape = (batch, 1, 1, 1)
        shift = self._uniform(batch, -cfg.brightness, cfg.brightness, generator, device).view(shape)
        factor = self._uniform(batch, 1 - cfg.contrast, 1 + cfg.contrast, generator, device).view(shape)
        mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
        out = (pixels - mean) * factor.to(pixels.dtype) + mean + shift.to(pixels.dtype)
        if cfg.noise_std > 0:
            noise = torch.randn(pixels.shape, generator=generator, device=device, dtype=pixels.dtype)
            out = out + cfg.noise_std * noise
        return out


ViewMaker = DropoutViews | AugmentedViews


def make_views(views: int | ViewMaker, modality: Modality, seed: int = 0) -> ViewMaker:
    """The view maker for ``views``: a number of views (dropout views for ``"text"``, augmented views
    for ``"image"``, as :func:`~hiercon.modality.input_modality` tells) or a ready view maker."""
    if isinstance(views, (DropoutViews, AugmentedViews)):
        if modality == TEXT and isinstance(views, AugmentedViews):
            raise ConfigError("AugmentedViews work on images, but the model is a text encoder")
        return views
    num_views = _check_num_views(views)
    if modality == IMAGE:
        return AugmentedViews(num_views=num_views, seed=seed)
    return DropoutViews(num_views=num_views)
