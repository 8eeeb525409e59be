"""A run on disk: the heads model and the run folder every later stage reads."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module("unibind.run.folder"), name)
