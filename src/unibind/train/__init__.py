"""features -> run: batches, losses, config + presets, the fit loop, fine-tuning, tuning."""

from __future__ import annotations

from typing import Any

_EXPORTS = {"finetune": "unibind.train.finetune", "tune": "unibind.train.tune",
            "TrainConfig": "unibind.train.config", "preset": "unibind.train.config"}


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(_EXPORTS.get(name, "unibind.train.fit")), name)
