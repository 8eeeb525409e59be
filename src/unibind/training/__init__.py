"""features -> run: batches, losses, config + presets, the fit loop, fine-tuning, tuning."""

from __future__ import annotations

from typing import Any

_EXPORTS = {"finetune": "unibind.training.finetune", "tune": "unibind.training.tune",
            "TrainConfig": "unibind.training.config", "preset": "unibind.training.config",
            "train": "unibind.training.trainer"}


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(_EXPORTS.get(name, "unibind.training.fit")), name)
