"""Load one tower (vision or audio, with its projection) out of a two-tower checkpoint.

``CLIPVisionModelWithProjection.from_pretrained(<full CLIP folder>)`` takes the vision sub-config
but not the top-level ``projection_dim`` (it would fall back to the class default and re-initialise
the projection). Here the tower config is built from the full config, then the weights load.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from transformers import AutoConfig, PretrainedConfig

from unibind.encoders.base import local_config_value
from unibind.encoders.spec import EncoderSpec
from unibind.util.quiet import quiet_loading


class ProjectedTower:
    """Mixin for tower encoders: the output dim is the checkpoint's ``projection_dim``."""

    model: torch.nn.Module

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @classmethod
    def config_dim(cls, spec: EncoderSpec) -> int | None:
        return local_config_value(spec, "projection_dim")


def quiet_transformers() -> contextlib.AbstractContextManager[None]:
    """Silence transformers' load report and bars (weights skipped on purpose, e.g. the other
    tower; ``unibind.util.quiet``)."""
    return quiet_loading()


def load_tower(model_cls: type, source: str, sub_config: str,
               kwargs: dict[str, Any]) -> torch.nn.Module:
    """``model_cls`` (e.g. CLIPVisionModelWithProjection) from a full or tower-only checkpoint."""
    config = AutoConfig.from_pretrained(source, **kwargs)
    tower: PretrainedConfig = getattr(config, sub_config, None) or config
    if tower is not config:
        tower = tower.__class__.from_dict(tower.to_dict())
        tower.projection_dim = config.projection_dim
    with quiet_transformers():
        return model_cls.from_pretrained(source, config=tower, **kwargs)
