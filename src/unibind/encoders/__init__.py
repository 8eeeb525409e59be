"""Encoders: a registry of backends (by name) and profiles (a backend per modality).

``load_encoder(spec)`` builds an encoder from an ``EncoderSpec`` (or its dict); backends are
imported only when used, so listing profiles or hitting the cache never loads a model.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from unibind.encoders.base import Encoder, ItemError
from unibind.encoders.profiles import DESCRIPTIONS, PROFILES, resolve_profile
from unibind.encoders.spec import EncoderSpec, fingerprint, identity

# backend name -> "module:Class" (lazy, so optional backends cost nothing until used)
BACKENDS: dict[str, str] = {
    "hf-text": "unibind.encoders.hf_text:HFTextEncoder",
    "hf-clip": "unibind.encoders.hf_clip:HFClipImageEncoder",
    "hf-clap": "unibind.encoders.hf_clap:HFClapAudioEncoder",
    "hf-clip-text": "unibind.encoders.hf_text_tower:HFClipTextEncoder",
    "hf-clap-text": "unibind.encoders.hf_text_tower:HFClapTextEncoder",
    "efficientnet-lite": "unibind.encoders.efficientnet:EfficientNetLiteEncoder",
    "aisfx": "unibind.encoders.aisfx_audio:AisfxAudioEncoder",
}


def backend_class(name: str) -> type[Encoder]:
    if name not in BACKENDS:
        raise KeyError(f"unknown encoder backend {name!r}; known: {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_encoder(spec: EncoderSpec | dict[str, Any], device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> Encoder:
    """Instantiate (and load the weights of) the encoder ``spec`` names."""
    spec = EncoderSpec.from_dict(spec)
    device = torch.device(device) if isinstance(device, str) else device
    return backend_class(spec.backend)(spec, device=device, dtype=dtype)


__all__ = ["BACKENDS", "DESCRIPTIONS", "PROFILES", "Encoder", "EncoderSpec", "ItemError",
           "backend_class", "fingerprint", "identity", "load_encoder", "resolve_profile"]
