"""Decode media: audio with soundfile (+ soxr resampling), images with Pillow.

Every failure raises ``MediaError`` with a reason a user can act on. Size limits are checked from
the file header before anything big is decoded: ``max_pixels`` (default: Pillow's decompression
bomb limit) and ``max_audio_seconds`` (a 2-hour recording would otherwise take gigabytes).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from PIL import Image, UnidentifiedImageError

from unibind.errors import UnibindError

DEFAULT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
DEFAULT_MAX_AUDIO_SECONDS = 600.0


class MediaError(UnibindError, ValueError):
    """A media file that cannot be decoded (corrupt, empty, unsupported, over a limit)."""


@dataclass(frozen=True)
class MediaLimits:
    """Largest inputs decoded: pixels per image, seconds per audio file."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS

    def __post_init__(self) -> None:
        if self.max_pixels <= 0 or not self.max_audio_seconds > 0:
            raise MediaError(f"media limits must be positive, got max_pixels={self.max_pixels}, "
                             f"max_audio_seconds={self.max_audio_seconds}")


DEFAULT_LIMITS = MediaLimits()


def load_audio(path: str | os.PathLike, sample_rate: int,
               max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate`` (channels averaged, soxr HQ resampling)."""
    try:
        info = sf.info(str(path))
        if info.samplerate <= 0:
            raise MediaError(f"invalid sample rate {info.samplerate}")
        seconds = info.frames / info.samplerate
        if seconds > max_seconds:
            raise MediaError(f"audio is {seconds:.1f} s long, above the limit of "
                             f"{max_seconds:g} s (raise --max-audio-seconds to accept it)")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except MediaError:
        raise
    except Exception as exc:  # any decoder failure is this item's error
        raise MediaError(f"cannot decode audio: {type(exc).__name__}: {exc}") from exc
    if data.shape[0] == 0:
        raise MediaError("zero-length audio")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise MediaError("audio contains NaN or infinite samples")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft: tuple[int, int] | None = None) -> Image.Image:
    """RGB image, fully decoded (truncated or corrupt files raise here, not later).

    ``draft``: let JPEGs decode at a reduced scale no smaller than this (width, height)."""
    try:
        with Image.open(path) as img:
            pixels = img.width * img.height
            if pixels > max_pixels:
                raise MediaError(f"image is {img.width}x{img.height} = {pixels:,} pixels, above "
                                 f"the limit of {max_pixels:,} (raise --max-pixels to accept it)")
            if draft:
                img.draft("RGB", draft)
            img.load()
            if img.width == 0 or img.height == 0:
                raise MediaError("empty image (0 pixels)")
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return img.convert("RGB")
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:  # raised by Image.open before we see the size
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else 0
        if pixels > max_pixels:
            raise MediaError(f"image has {pixels:,} pixels, above the limit of {max_pixels:,} "
                             "(raise --max-pixels to accept it)") from exc
        raise MediaError(f"image refused as a decompression bomb by Pillow: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MediaError(f"cannot decode image: {exc}") from exc
    except Exception as exc:  # any other decoder failure is still this item's error
        raise MediaError(f"cannot decode image: {type(exc).__name__}: {exc}") from exc
