"""Decode media: audio with soundfile (+ soxr resampling), images with Pillow, bounded by what
they produce.

Every failure raises ``MediaError`` (``DecodeFailed`` when the bytes themselves cannot be read)
with our own one-line reason, never a decoder library's message. Before anything big is decoded
the header is checked: sample rate (2-384 kHz), channels (1-64), length (``max_audio_seconds``),
pixels (``max_pixels``). Audio is read block by block into one mono buffer (a 64-channel file costs
no more memory than a mono one); images can be decoded at a reduced size (JPEG draft mode, then
an integer box reduction) so that a huge picture never lives at full size for long.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from PIL import Image, UnidentifiedImageError

from unibind.errors import UnibindError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
DEFAULT_MAX_AUDIO_SECONDS = 600.0
SAMPLE_RATES = (2_000, 384_000)   # rates a real recording has (Hz)
MAX_CHANNELS = 64
AUDIO_BLOCK = 1 << 16             # frames read at a time
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # what a query upload may be


class MediaError(UnibindError, ValueError):
    """A media file that cannot be decoded (corrupt, empty, unsupported, over a limit)."""


class DecodeFailed(MediaError):
    """The file's bytes are not a readable image / sound (the decoder's own text is logged at
    DEBUG level, never shown)."""


@dataclass(frozen=True)
class MediaLimits:
    """Largest inputs decoded: pixels per image, seconds per audio file; ``max_image_side``
    (optional) decodes images at a reduced size whose longer side is at most this."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    max_image_side: int | None = None

    def __post_init__(self) -> None:
        if self.max_pixels <= 0 or not self.max_audio_seconds > 0 or (
                self.max_image_side is not None and self.max_image_side < 16):
            raise MediaError(f"media limits must be positive, got max_pixels={self.max_pixels}, "
                             f"max_audio_seconds={self.max_audio_seconds}, "
                             f"max_image_side={self.max_image_side}")


DEFAULT_LIMITS = MediaLimits()


@dataclass(frozen=True)
class AudioHeader:
    """What a sound file's header says, already checked against real-world bounds."""

    samplerate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate


def audio_header(path: str | os.PathLike) -> AudioHeader:
    """The header of a sound file; ``DecodeFailed`` if unreadable, ``MediaError`` for a rate,
    channel count or length no real recording has."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile's text is not for users
        log.debug("soundfile cannot read %s: %s", path, exc)
        raise DecodeFailed("cannot decode audio: not a readable sound file") from None
    head = AudioHeader(int(info.samplerate), int(info.channels), int(info.frames))
    lo, hi = SAMPLE_RATES
    if not lo <= head.samplerate <= hi:
        raise MediaError(f"audio sample rate {head.samplerate} Hz is outside {lo:,}-{hi:,} Hz")
    if not 1 <= head.channels <= MAX_CHANNELS:
        raise MediaError(f"audio has {head.channels} channels (1-{MAX_CHANNELS} accepted)")
    if head.frames <= 0:
        raise MediaError("zero-length audio")
    return head


def load_audio(path: str | os.PathLike, sample_rate: int,
               max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate`` (channels averaged, soxr HQ resampling).

    The header is checked first (rate, channels, ``max_seconds``); the samples are then read
    block by block into one mono buffer of the header's length, never more."""
    head = audio_header(path)
    if head.seconds > max_seconds:
        raise MediaError(f"audio is {head.seconds:.1f} s long, above the limit of "
                         f"{max_seconds:g} s (raise --max-audio-seconds to accept it)")
    mono = np.empty(head.frames, dtype=np.float32)
    pos = 0
    try:
        with sf.SoundFile(str(path)) as fh:
            for block in fh.blocks(blocksize=AUDIO_BLOCK, dtype="float32", always_2d=True):
                n = min(len(block), head.frames - pos)
                if n <= 0:
                    break
                mono[pos:pos + n] = block[:n].mean(axis=1)
                pos += n
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this item's error
        log.debug("soundfile cannot decode %s: %s", path, exc)
        raise DecodeFailed("cannot decode audio: corrupt or truncated sound data") from None
    if pos == 0:
        raise MediaError("zero-length audio")
    mono = mono[:pos]
    if not np.isfinite(mono).all():
        raise MediaError("audio contains NaN or infinite samples")
    if head.samplerate != sample_rate:
        mono = soxr.resample(mono, head.samplerate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _bomb_pixels(exc: Exception) -> int:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else 0


def _over(w: int, h: int, max_pixels: int) -> MediaError:
    return MediaError(f"image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,} "
                      "(raise --max-pixels to accept it)")


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft: tuple[int, int] | None = None, max_side: int | None = None) -> Image.Image:
    """RGB image, fully decoded (truncated or corrupt files raise here, not later).

    ``draft``: let JPEGs decode at a reduced scale no smaller than this (width, height).
    ``max_side``: the result's longer side is at most this (JPEG decodes at reduced scale, other
    formats are box-reduced right after decoding, before any colour conversion)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise _over(w, h, max_pixels)
            if w == 0 or h == 0:
                raise MediaError("empty image (0 pixels)")
            want = draft or ((max_side, max_side) if max_side else None)
            if want and img.format == "JPEG":
                img.draft("RGB", want)
            img.load()
            return _to_rgb(_shrink(img, max_side))
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:  # raised by Image.open before we see the size
        pixels = _bomb_pixels(exc)
        if pixels > max_pixels:
            raise MediaError(f"image has {pixels:,} pixels, above the limit of {max_pixels:,} "
                             "(raise --max-pixels to accept it)") from None
        raise MediaError(f"image of {pixels:,} pixels refused as a decompression bomb") from None
    except UnidentifiedImageError:
        raise DecodeFailed("cannot decode image: not a recognised image file") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this item's error
        log.debug("Pillow cannot decode %s: %s: %s", path, type(exc).__name__, exc)
        raise DecodeFailed("cannot decode image: corrupt image (truncated or damaged "
                           "data)") from None


def _shrink(img: Image.Image, max_side: int | None) -> Image.Image:
    if not max_side or max(img.size) <= max_side:
        return img
    factor = math.ceil(max(img.size) / max_side)
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        alpha = "A" in img.mode or "transparency" in img.info
        img = img.convert("RGBA" if alpha else "RGB")
    small = img.reduce(factor) if factor > 1 else img
    if max(small.size) > max_side:
        small.thumbnail((max_side, max_side), Image.Resampling.BOX)
    return small


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


# -- content sniffing: what an uploaded file is, and what decoding it would cost ---------------
def sniff_image(path: str | os.PathLike) -> Mapping[str, float] | None:
    """``{"pixels": w*h}`` if the bytes are an image this service reads, else None (header
    only; ``MediaError`` for an empty or unaccepted image)."""
    try:
        with Image.open(path) as img:
            fmt, (w, h) = img.format, img.size
    except Image.DecompressionBombError as exc:
        return {"pixels": float(_bomb_pixels(exc) or 2 ** 40)}
    except Exception:  # noqa: BLE001 - not an image
        return None
    if fmt not in IMAGE_FORMATS:
        raise MediaError(f"{fmt} images are not accepted ({', '.join(IMAGE_FORMATS)})")
    if w * h == 0:
        raise MediaError("empty image (0 pixels)")
    return {"pixels": float(w * h)}


def sniff_audio(path: str | os.PathLike) -> Mapping[str, float] | None:
    """``{"audio_seconds": s}`` if the bytes are a sound file, else None (header only;
    ``MediaError`` for a rate, channel count or length no real recording has)."""
    try:
        head = audio_header(path)
    except DecodeFailed:
        return None
    return {"audio_seconds": head.seconds}
