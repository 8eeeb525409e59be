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


class TextEmbeds(torch.nn.Module):
    """A graph core: tokens -> a text tower's projected ``text_embeds``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).text_embeds


class ImageEmbeds(torch.nn.Module):
    """A graph core: pixels -> a vision tower's projected ``image_embeds``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).image_embeds


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
