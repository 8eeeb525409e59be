"""features -> run: train per-modality heads contrastively on the training split.

``fit`` runs the one fit loop (``training.loop``) over the stored features (used by
``training.trainer.train`` and ``tune``); ``run_info`` is what a trained run's ``run.json`` holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from unibind.features.folder import Features, data_digest
from unibind.run.heads import Heads
from unibind.training.config import PRESETS, TrainConfig, preset
from unibind.training.loop import FeatureStep, FitResult, fit_loop
from unibind.util.jsonio import to_dict

log = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` intra-op threads (restored after); small heads train fastest on one."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(features: Features, cfg: TrainConfig, seed: int = 0, split_seed: int = 0,
        threads: int | None = 1, base: TrainConfig | None = None,
        heads: Heads | None = None) -> FitResult:
    """Train heads on the training split (``train.loop.fit_loop`` over the stored features).

    ``threads``: torch intra-op threads while training (``None``: leave as is). One thread is
    fastest for small heads on a busy CPU and makes the float sums thread-count independent.
    The caller's torch thread count and random state are the same afterwards.
    ``base``: the preset ``cfg`` came from; fine-tuning fields changed from it are refused.
    ``heads``: start from these (e.g. a bound run's, ``train --init``) instead of new ones."""
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        return fit_loop(features, cfg, FeatureStep(features), seed, split_seed, base, heads)


def preset_base(preset_name: str) -> TrainConfig | None:
    """The preset a config started from (``None`` for a name that is no preset)."""
    return preset(preset_name) if preset_name in PRESETS else None


def run_info(feats: Features, out: Path, preset_name: str, cfg: TrainConfig, seed: int,
             res: FitResult, stats: dict[str, Any], extra: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """The ``run.json`` record of a fit: features, preset, config, split, curve, calibration."""
    fpath = None
    if feats.path is not None:
        fpath = os.path.relpath(Path(feats.path).resolve(), out.resolve().parent / out.name)
    return {"encoders": feats.meta.get("encoders", {}), "features": fpath,
            "synthetic": feats.meta.get("synthetic"), "preset": preset_name,
            "config": to_dict(cfg), "seed": seed, "data_digest": data_digest(feats),
            "modalities": feats.modalities, "split": res.split_info, "curve": res.curve,
            "best_epoch": res.best_epoch,
            "best_val_mAP@10": res.best_entry.get("val_mAP@10", res.best_val),
            "best_val_score": res.best_val, "selection": cfg.select,
            "stopped_early": res.stopped_early, "train_seconds": res.seconds,
            **{k: stats[k] for k in ("calibration", "calibration_pairs", "calibration_centered",
                                     "calibration_pairs_centered", "noise_pairs",
                                     "noise_pairs_centered")},
            "search": stats["search"], **(extra or {})}
