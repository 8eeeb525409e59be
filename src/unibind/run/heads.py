"""Per-modality projection heads into one shared space (modality is a key, as in ImageBind)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from unibind.errors import UnknownName


@dataclass(frozen=True)
class HeadsConfig:
    """Shape of the heads: input dim per modality, shared dim, optional MLP hidden width."""

    dims: dict[str, int] = field(default_factory=dict)
    embed_dim: int = 256
    hidden: int = 0  # 0: one Linear per modality (the reference); >0: Linear-GELU-Linear
    dropout: float = 0.0
    logit_scale_init: float = 1 / 0.07
    logit_scale_max: float = 100.0
    # per-modality head shape overriding hidden/dropout (bound runs, see ``unibind.binding.bind``):
    # {"kind": "linear", "normalize_input": true} or {"kind": "class-bridge", "classes": 1000};
    # {"kind": "residual", "base": {<one of those>}, "hidden": 512, "dropout": 0.1}: a base map
    # (e.g. a bound run's) plus a trained MLP correction (``unibind.training.bound_start``)
    kinds: dict[str, dict] = field(default_factory=dict)


class InputNorm(nn.Module):
    """L2-normalises its input: a head after it sees the direction only (cosine geometry)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1)


class ClassBridge(nn.Module):
    """``x -> softmax(logits(x)) @ prototypes``: class probabilities as weights over one vector
    per class (e.g. an ImageNet head's output over text embeddings of the class names)."""

    def __init__(self, d_in: int, classes: int, embed_dim: int):
        super().__init__()
        self.logits = nn.Linear(d_in, classes)
        self.prototypes = nn.Linear(classes, embed_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prototypes(self.logits(x).softmax(dim=-1))


class Residual(nn.Module):
    """``x -> base(x) + delta(x)``: a fixed starting map plus a learned correction (the last
    layer of ``delta`` starts at zero, so a new residual head equals its base)."""

    def __init__(self, base: nn.Module, d_in: int, hidden: int, embed_dim: int,
                 dropout: float = 0.0):
        super().__init__()
        self.base = base
        self.delta = nn.Sequential(InputNorm(), nn.Linear(d_in, hidden), nn.GELU(),
                                   nn.Dropout(dropout), nn.Linear(hidden, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.delta(x)


def _kind_head(d_in: int, cfg: HeadsConfig, modality: str, kind: dict) -> nn.Module:
    if kind.get("kind") == "residual":
        base = _kind_head(d_in, cfg, modality, kind["base"])
        return Residual(base, d_in, int(kind.get("hidden", 512)), cfg.embed_dim,
                        float(kind.get("dropout", 0.0)))
    if kind.get("kind") == "class-bridge":
        return ClassBridge(d_in, int(kind["classes"]), cfg.embed_dim)
    if kind.get("kind") == "linear":
        linear = nn.Linear(d_in, cfg.embed_dim)
        return nn.Sequential(InputNorm(), linear) if kind.get("normalize_input") else linear
    raise UnknownName(f"unknown head kind {kind.get('kind')!r} for {modality}")


def _head(d_in: int, cfg: HeadsConfig, modality: str = "") -> nn.Module:
    kind = cfg.kinds.get(modality)
    if kind:
        return _kind_head(d_in, cfg, modality, kind)
    if cfg.hidden <= 0:
        return nn.Linear(d_in, cfg.embed_dim)
    return nn.Sequential(nn.Linear(d_in, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                         nn.Linear(cfg.hidden, cfg.embed_dim))


class Heads(nn.Module):
    """``{modality: features}`` -> ``{modality: L2-normalised embedding}`` plus a logit scale."""

    def __init__(self, cfg: HeadsConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.ModuleDict({m: _head(d, cfg, m) for m, d in cfg.dims.items()})
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(cfg.logit_scale_init)))

    @property
    def modalities(self) -> list[str]:
        return list(self.proj.keys())

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality not in self.proj:
            raise UnknownName(f"no head for modality {modality!r}; heads: {self.modalities}")
        return nn.functional.normalize(self.proj[modality](x), dim=-1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.embed(m, x) for m, x in inputs.items()}

    def logit_scale(self) -> torch.Tensor:
        """exp(log scale), clamped to ``logit_scale_max`` as in CLIP."""
        return self.log_logit_scale.exp().clamp(max=self.cfg.logit_scale_max)
