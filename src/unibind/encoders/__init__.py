"""Encoders: a registry of backends (by name) and profiles (a backend per modality).

``load_encoder(spec)`` builds an encoder from an ``EncoderSpec`` (or its dict); backends are
imported only when used, so listing profiles or hitting the cache never loads a model, and
importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from unibind.encoders.profiles import DESCRIPTIONS, PROFILES, resolve_profile
from unibind.encoders.spec import EncoderLoadError, EncoderSpec, fingerprint, identity
from unibind.errors import unknown

if TYPE_CHECKING:
    import torch

    from unibind.encoders.base import Encoder, ItemError

# backend name -> "module:Class" (lazy, so optional backends cost nothing until used) or a class
BACKENDS: dict[str, Any] = {
    "hf-text": "unibind.encoders.hf_text:HFTextEncoder",
    "hf-clip": "unibind.encoders.hf_clip:HFClipImageEncoder",
    "hf-clap": "unibind.encoders.hf_clap:HFClapAudioEncoder",
    "hf-clip-text": "unibind.encoders.hf_text_tower:HFClipTextEncoder",
    "hf-clap-text": "unibind.encoders.hf_text_tower:HFClapTextEncoder",
    "efficientnet-lite": "unibind.encoders.efficientnet:EfficientNetLiteEncoder",
    "aisfx": "unibind.encoders.aisfx_audio:AisfxAudioEncoder",
}


def register_backend(name: str, target: str | type, replace: bool = False) -> None:
    """Make backend ``name`` available: ``target`` is an ``Encoder`` subclass or "module:Class"."""
    if name in BACKENDS and not replace:
        raise EncoderLoadError(f"encoder backend {name!r} is already registered")
    BACKENDS[name] = target


def unregister_backend(name: str) -> None:
    """Remove a registered encoder backend (no error when absent)."""
    BACKENDS.pop(name, None)


def backend_class(name: str) -> type[Encoder]:
    """The encoder class registered under ``name`` (imported on first use)."""
    if name not in BACKENDS:
        raise unknown("encoder backend", name, sorted(BACKENDS))
    target = BACKENDS[name]
    if not isinstance(target, str):
        return target
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def load_encoder(spec: EncoderSpec | dict[str, Any], device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> Encoder:
    """Instantiate (and load the weights of) the encoder ``spec`` names; ``device`` defaults to
    auto (cuda > mps > cpu), ``dtype`` to fp32."""
    import torch

    from unibind.encoders.spec import EncoderLoadError
    from unibind.util.runtime import pick_device

    spec = EncoderSpec.from_dict(spec)
    device = device if isinstance(device, torch.device) else pick_device(device)
    try:
        return backend_class(spec.backend)(spec, device=device, dtype=dtype)
    except EncoderLoadError:
        raise
    except OSError as exc:  # hub unreachable, folder or files missing
        raise EncoderLoadError(
            f"cannot load the {spec.modality} encoder {spec.source!r}: {exc}\n"
            "Without the Hugging Face hub, use --profile offline, or a local "
            f"model folder (--{spec.modality}-encoder DIR).") from exc


def __getattr__(name: str) -> Any:
    if name in ("Encoder", "ItemError"):  # torch-backed: imported on first use
        from unibind.encoders import base

        return getattr(base, name)
    raise AttributeError(f"module 'unibind.encoders' has no attribute {name!r}")


__all__ = ["BACKENDS", "DESCRIPTIONS", "PROFILES", "Encoder", "EncoderLoadError", "EncoderSpec",
           "ItemError", "backend_class", "fingerprint", "identity", "load_encoder",
           "register_backend", "resolve_profile", "unregister_backend"]
