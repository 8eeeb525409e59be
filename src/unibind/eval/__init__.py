"""run -> metrics: retrieval metrics (pure numpy), score calibration, ``evaluate``."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module("unibind.eval.evaluate"), name)
