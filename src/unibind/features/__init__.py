"""manifest -> features: the manifest, media decoding, the content-addressed cache, extraction
and the features folder on disk (``store``), which every later stage reads features through."""

from __future__ import annotations

from typing import Any

_EXPORTS = {"extract": "unibind.features.extract"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    return getattr(importlib.import_module("unibind.features.folder"), name)
