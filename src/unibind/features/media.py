"""Decode media: audio with soundfile (+ soxr resampling), images with Pillow.

Every failure raises ``MediaError`` with a reason a user can act on.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import soxr
from PIL import Image, UnidentifiedImageError

from unibind.errors import UnibindError


class MediaError(UnibindError, ValueError):
    """A media file that cannot be decoded (corrupt, empty, unsupported)."""


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate`` (channels averaged, soxr HQ resampling)."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"cannot decode audio: {exc}") from exc
    if data.shape[0] == 0:
        raise MediaError("zero-length audio")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise MediaError("audio contains NaN or infinite samples")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_image(path: str | os.PathLike) -> Image.Image:
    """RGB image, fully decoded (truncated or corrupt files raise here, not later)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.width == 0 or img.height == 0:
                raise MediaError("empty image (0 pixels)")
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MediaError(f"cannot decode image: {exc}") from exc
