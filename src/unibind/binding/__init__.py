"""Runs made with no training: a text bridge (aligned encoders) or the class-name bridge
(offline profile) maps every modality into one space (``bind``)."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module("unibind.binding.bind"), name)
