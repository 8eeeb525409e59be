"""Device, precision and cache location: chosen once, at the edge, and passed down."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from unibind.errors import UsageError, unknown

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
          "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}

DEVICES = "auto, cpu, cuda, cuda:N, mps"


def pick_device(preference: str | None = None) -> torch.device:
    """``preference`` (e.g. "cpu", "cuda:1") or the best available: cuda > mps > cpu."""
    if preference and preference != "auto":
        try:
            device = torch.device(preference)
        except (RuntimeError, ValueError):
            raise UsageError(f"unknown device {preference!r}; choose from {DEVICES}") from None
        usable = {"cpu": True, "cuda": torch.cuda.is_available(),
                  "mps": bool(getattr(torch.backends, "mps", None))
                  and torch.backends.mps.is_available()}
        if not usable.get(device.type, True):
            raise UsageError(f"device {preference!r} is not available on this machine; "
                             f"choose from {DEVICES}")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, preference: str | None = None) -> torch.dtype:
    """``preference``, else on CUDA bf16 where the GPU supports it (fp16 otherwise), else fp32."""
    if preference and preference != "auto":
        if preference not in DTYPES:
            raise unknown("dtype", preference, ["auto", *DTYPES])
        return DTYPES[preference]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cache_root() -> Path:
    """``$UNIBIND_CACHE``, else ``$XDG_CACHE_HOME/unibind``, else ``~/.cache/unibind``."""
    if env := os.environ.get("UNIBIND_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "unibind"
