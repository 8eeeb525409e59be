"""What the service accepts: its limits, and checks of uploaded query files against them.

Uploads are judged by their bytes, never by their names: an image is what Pillow recognises, a
sound is what libsndfile recognises. Every refusal is a ``ServeError`` carrying the HTTP status
and, for a cap, the name and value of the limit it hit.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf
from PIL import Image, UnidentifiedImageError

from unibind.errors import UnibindError

IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


class ServeError(UnibindError):
    """A request the service refuses; ``status`` is the HTTP status, ``limit`` the cap it hit."""

    def __init__(self, message: str, status: int = 422, limit: str | None = None,
                 value: Any = None):
        super().__init__(message)
        self.message, self.status, self.limit, self.value = message, status, limit, value

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.limit:
            out["limit"], out["value"] = self.limit, self.value
        return out


@dataclass(frozen=True)
class ServeLimits:
    """Caps on one request (body bytes, image pixels, audio length, k, text, time) and the
    number of threads that run requests."""

    max_upload_mb: float = 20.0
    max_pixels: int = 40_000_000
    max_audio_seconds: float = 600.0
    max_k: int = 200
    max_text_chars: int = 2_000
    timeout_s: float = 30.0
    workers: int = 8

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def as_dict(self) -> dict[str, Any]:
        return {"max_upload_mb": self.max_upload_mb, "max_pixels": self.max_pixels,
                "max_audio_seconds": self.max_audio_seconds, "max_k": self.max_k,
                "max_text_chars": self.max_text_chars, "timeout_s": self.timeout_s}


def too_large(limits: ServeLimits) -> ServeError:
    """The 413 error for a request body over ``max_upload_mb``."""
    return ServeError(f"request body larger than max_upload_mb={limits.max_upload_mb:g} MB",
                      status=413, limit="max_upload_mb", value=limits.max_upload_mb)


def sniff(path: str | os.PathLike) -> str | None:
    """``"image"``, ``"audio"`` or None, from the file's content alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                if img.format in IMAGE_FORMATS:
                    return "image"
        except Image.DecompressionBombError:
            return "image"
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            pass
    try:
        sf.info(str(path))
        return "audio"
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None


def check_image(path: Path, limits: ServeLimits, name: str = "image") -> None:
    """Refuse a file that is not a decodable image, or one over ``max_pixels``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                if img.format not in IMAGE_FORMATS:
                    raise ServeError(f"{name}: {img.format} images are not accepted "
                                     f"({', '.join(IMAGE_FORMATS)})")
                pixels = img.width * img.height
                if pixels > limits.max_pixels:
                    raise _pixels(name, img.width, img.height, limits)
                if pixels == 0:
                    raise ServeError(f"{name}: empty image (0 pixels)")
                img.load()
        except Image.DecompressionBombError as exc:
            raise ServeError(f"{name}: {exc}", status=413, limit="max_pixels",
                             value=limits.max_pixels) from exc
        except UnidentifiedImageError as exc:
            raise ServeError(f"{name}: not a recognised image file") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ServeError(f"{name}: corrupt image: {exc}") from exc


def _pixels(name: str, w: int, h: int, limits: ServeLimits) -> ServeError:
    return ServeError(f"{name}: {w}x{h} = {w * h} pixels exceeds max_pixels="
                      f"{limits.max_pixels}", status=413, limit="max_pixels",
                      value=limits.max_pixels)


def check_audio(path: Path, limits: ServeLimits, name: str = "audio") -> None:
    """Refuse a file that is not a readable sound, an empty one, or one over
    ``max_audio_seconds``; the samples themselves are decoded (and checked) by the encoder."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ServeError(f"{name}: not a recognised audio file ({exc})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise ServeError(f"{name}: zero-length audio")
    seconds = info.frames / info.samplerate
    if seconds > limits.max_audio_seconds:
        raise ServeError(f"{name}: {seconds:.1f} s exceeds max_audio_seconds="
                         f"{limits.max_audio_seconds:g}", status=413, limit="max_audio_seconds",
                         value=limits.max_audio_seconds)
    try:  # a header that lies about its data: read a block to catch truncation early
        with sf.SoundFile(str(path)) as fh:
            fh.read(min(info.frames, 4096), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ServeError(f"{name}: corrupt audio: {exc}") from exc


def check_upload(path: Path, declared: str, limits: ServeLimits, name: str) -> str:
    """The upload's modality (``declared`` = image | audio | any), after its checks."""
    kind = sniff(path)
    if kind is None:
        raise ServeError(f"{name}: neither an image nor a sound this service can read")
    if declared != "any" and kind != declared:
        raise ServeError(f"{name}: sent as {declared} but its content is {kind}")
    (check_image if kind == "image" else check_audio)(path, limits, name)
    return kind
