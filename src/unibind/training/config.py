"""Training recipes: one frozen dataclass, two named presets, JSON in and out.

``seed`` reproduces the reference recipe exactly (instance positives, 0.3 per pair + 0.1 x MSE to
the triplet mean, batch 8, AdamW lr 1e-5, weight decay 0.01, 20 epochs, D=256, no early stop).
``class`` is the former default, good at finding the category (see ``benchmarks/presets.py``):
MLP heads (512 hidden, dropout 0.1), class positives, equal pair weights, no MSE term, batch 64,
AdamW lr 2e-3 with a cosine schedule, up to 40 epochs with early stopping on validation
cross-modal mAP@10 (patience 6).
``default`` finds the thing and its category (``docs/training.md``, ``benchmarks/instance.py``):
the same heads and schedule, but it starts from the bound run when the features can be bound
(``bound_start``: residual heads on the bound map, ``unibind.training.bound_start``), counts
positives at both levels (same group; same label weighted ``class_weight``), selects epochs on
instance MRR and class mAP@10 together (``select="both"``) and interpolates between the bound
and the trained heads (WiSE-FT) with the share chosen on validation among ``mix_shares``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unibind.errors import UsageError, unknown
from unibind.modalities import BUILTIN, modality_names
from unibind.util.jsonio import from_dict, read_json

PATHS = ("heads", "finetune")  # heads-only training (`train`), fine-tuning (`train --finetune`)


class ConfigError(UsageError):
    """A training config with a wrong value, or a field the chosen training path cannot use."""


def pair_names(modalities: tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
    """Every modality pair key (``text-image`` ...), of the registered modalities by default."""
    from itertools import combinations

    mods = modality_names() if modalities is None else modalities
    return tuple(f"{a}-{b}" for a, b in combinations(mods, 2))


PAIRS = pair_names(BUILTIN)  # the built-in pairs (``pair_names()`` follows the registry)


def _equal(w: float, modalities: tuple[str, ...] | None = None) -> dict[str, float]:
    return {p: w for p in pair_names(modalities)}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (together with the seed and the features)."""

    embed_dim: int = 256
    hidden: int = 512  # >0: Linear-GELU-Dropout-Linear heads; 0: one Linear (the reference)
    dropout: float = 0.1
    positives: str = "class"  # instance | class | both (instance + class_weight x class)
    class_weight: float = 0.5  # weight of the class term with positives="both"
    select: str = "class"  # validation criterion: class (mAP@10) | both (+ instance MRR)
    bound_start: bool = False  # start from the bound run when the features can be bound
    mix_shares: tuple[float, ...] = (1.0,)  # WiSE-FT shares of the trained heads to try
    soup: int = 1  # bound start: train this many seeds from the same start, average weights
    pair_weights: dict[str, float] = field(default_factory=lambda: _equal(1.0))
    mse_weight: float = 0.0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    epochs: int = 40
    schedule: str = "cosine"  # cosine | constant
    temperature: float = 0.07  # logit scale starts at 1 / temperature
    logit_scale_max: float = 100.0
    learn_scale: bool = True
    patience: int = 6  # epochs without validation gain before stopping; 0: never stop early
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    val_queries: int = 1000  # per modality, for the per-epoch validation metric
    # fine-tuning (``--finetune``): train backbones too
    finetune_layers: int = 0  # 0: all parameters; N: the last N blocks/layers
    backbone_lr: float = 1e-5
    finetune_batch_size: int = 16


PRESETS: dict[str, TrainConfig] = {
    "seed": TrainConfig(hidden=0, dropout=0.0, positives="instance",
                        pair_weights=_equal(0.3, BUILTIN), mse_weight=0.1,
                        batch_size=8, lr=1e-5, weight_decay=0.01, epochs=20,
                        schedule="constant", patience=0, finetune_batch_size=8),
    "class": TrainConfig(pair_weights=_equal(1.0, BUILTIN)),
    "default": TrainConfig(pair_weights=_equal(1.0, BUILTIN), positives="both", select="both",
                           bound_start=True, mix_shares=(0.25, 0.5, 0.75, 1.0)),
}
POSITIVES = ("instance", "class", "both")
SELECT = ("class", "both")


# The training path that reads each field; every field not named here is read by both. A path
# refuses a config whose other-path fields differ from its preset (values it would ignore).
FIELD_PATHS: dict[str, str] = {"batch_size": "heads", "finetune_layers": "finetune",
                               "backbone_lr": "finetune", "finetune_batch_size": "finetune",
                               "bound_start": "heads", "mix_shares": "heads", "soup": "heads"}
# read by ``train``'s bound start (``unibind.training.bound_start``), not by the fit loop
BOUND_FIELDS = ("bound_start", "mix_shares", "soup")


def preset(name: str) -> TrainConfig:
    """The preset ``name``; its equal pair weights extend to pairs of registered modalities."""
    if name not in PRESETS:
        raise unknown("preset", name, sorted(PRESETS))
    cfg = PRESETS[name]
    weights = set(cfg.pair_weights.values())
    missing = [p for p in pair_names() if p not in cfg.pair_weights]
    if missing and len(weights) == 1:
        cfg = dataclasses.replace(cfg, pair_weights={**cfg.pair_weights,
                                                     **dict.fromkeys(missing, weights.pop())})
    return cfg


def config_from_json(data: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A ``TrainConfig`` from a dict (e.g. the best config written by ``unibind tune``).

    Accepts either the config itself or ``{"config": {...}}``; missing keys keep ``base``."""
    data = data.get("config", data)
    merged = {**dataclasses.asdict(base or TrainConfig()), **data}
    return from_dict(TrainConfig, merged)


def load_train_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """A ``TrainConfig`` from a JSON file (e.g. ``tune``'s output), over ``base``."""
    return config_from_json(read_json(path), base)


def override(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """Replace fields, ignoring ``None`` values (CLI options left unset)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def check_config(cfg: TrainConfig, path: str | None = None, base: TrainConfig | None = None
                 ) -> None:
    """Refuse wrong values; with ``path`` and ``base`` (the preset ``cfg`` started from) also a
    field that ``path`` does not read but that was changed from ``base``."""
    if cfg.positives not in POSITIVES:
        raise ConfigError(f"positives must be instance, class or both, not {cfg.positives!r}")
    if cfg.select not in SELECT:
        raise ConfigError(f"select must be class or both, not {cfg.select!r}")
    if cfg.soup < 1:
        raise ConfigError(f"soup must be at least 1, not {cfg.soup!r}")
    if not cfg.mix_shares or not all(0.0 <= a <= 1.0 for a in cfg.mix_shares):
        raise ConfigError(f"mix_shares must be shares in [0, 1], not {cfg.mix_shares!r}")
    if cfg.schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule must be cosine or constant, not {cfg.schedule!r}")
    bad = sorted(set(cfg.pair_weights) - set(pair_names()))
    if bad:
        raise ConfigError(f"unknown pair weight keys {bad}; expected {pair_names()}")
    if cfg.batch_size < 2 or cfg.finetune_batch_size < 2 or cfg.epochs < 1 or cfg.embed_dim < 1:
        raise ConfigError("batch_size >= 2, finetune_batch_size >= 2, epochs >= 1 and "
                          "embed_dim >= 1 are required")
    if path is None or base is None:
        return
    for name, owner in FIELD_PATHS.items():
        if owner != path and getattr(cfg, name) != getattr(base, name):
            raise ConfigError(
                f"{name}={getattr(cfg, name)!r} is read by {_PATH_NAMES[owner]} only; "
                f"{_PATH_NAMES[path]} would ignore it (its preset has "
                f"{getattr(base, name)!r})" + _HINTS.get(name, ""))


_PATH_NAMES = {"heads": "heads-only training", "finetune": "fine-tuning (--finetune)"}
_HINTS = {"batch_size": "; fine-tuning reads finetune_batch_size"}
