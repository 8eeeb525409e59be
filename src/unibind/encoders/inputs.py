"""Raw inputs every backend of a modality accepts, checked once: a bad item raises ``ItemError``
naming it (backends then only preprocess for their model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from unibind.encoders.base import ItemError
from unibind.media.decode import DEFAULT_LIMITS, MediaError, MediaLimits, load_audio, load_image


def audio_wave(item: Any, sample_rate: int, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """An audio file (decoded, mono, resampled; at most ``limits.max_audio_seconds``) or a mono
    waveform already at ``sample_rate`` -> float32 samples."""
    if isinstance(item, np.ndarray):
        if item.size == 0:
            raise ItemError("<array>", "zero-length audio")
        if not np.isfinite(item).all():
            raise ItemError("<array>", "audio contains NaN or infinite samples")
        return item.astype(np.float32).reshape(-1)
    try:
        return load_audio(item, sample_rate, limits.max_audio_seconds)
    except MediaError as exc:
        raise ItemError(item, str(exc)) from exc


def rgb_image(item: Any, limits: MediaLimits = DEFAULT_LIMITS,
              draft: tuple[int, int] | None = None) -> Image.Image:
    """An image file (at most ``limits.max_pixels``; ``draft``: let JPEG decode at a reduced
    size, see ``load_image``), a PIL image or an ``HxWx3`` uint8 array -> an RGB PIL image."""
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.size == 0:
            raise ItemError("<array>", f"expected an HxWx3 image array, got {item.shape}")
        item = Image.fromarray(item.astype(np.uint8))
    if isinstance(item, Image.Image):
        if item.width == 0 or item.height == 0:
            raise ItemError("<image>", "empty image (0 pixels)")
        return item.convert("RGB")
    try:
        return load_image(item, limits.max_pixels, draft=draft, max_side=limits.max_image_side)
    except MediaError as exc:
        raise ItemError(item, str(exc)) from exc
