"""features -> run: train per-modality heads contrastively on the training split.

``fit`` runs the one fit loop (``train.loop``) over the stored features (used by ``train`` and
``tune``); ``train`` adds centres, score calibration, the recommended search mode and writes the
run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unibind.eval.calibration import (
    apply_centers,
    compare_modes,
    modality_centers,
    per_target_r,
    recommend,
    score_stats,
)
from unibind.features.store import Features, load_features
from unibind.run.embed import embed_items
from unibind.run.folder import save_run
from unibind.run.heads import Heads
from unibind.training.config import PRESETS, TrainConfig, preset
from unibind.training.loop import FeatureStep, FitResult, fit_loop
from unibind.util.jsonio import to_dict

log = logging.getLogger(__name__)
FORMAT = 1


def data_digest(features: Features) -> str:
    """sha256 over the item table (id, modality, label, group, split, row) and every matrix."""
    h = hashlib.sha256()
    cols = ["id", "modality", "label", "group", "split", "row"]
    h.update(features.items[cols].to_csv(index=False).encode())
    for m in sorted(features.arrays):
        a = np.ascontiguousarray(features.arrays[m], dtype=np.float32)
        h.update(f"{m}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


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


def space_stats(heads: Heads, features: Features, split: np.ndarray) -> dict[str, Any]:
    """Centres + calibration (training data) and the recommended mixed mode (validation)."""
    train_e = embed_items(heads, features, split == "train", 20000, seed=0).vectors
    centers = modality_centers(train_e)
    calib, calib_pairs = score_stats(train_e)
    calib_c, calib_pairs_c = score_stats(apply_centers(train_e, centers))
    search: dict[str, Any] = {"center": False, "mode": "balanced", "rule": "no validation data"}
    if (split == "val").any():
        val = embed_items(heads, features, split == "val", 2000, seed=0)
        if len(val.vectors) > 1:
            search = recommend(compare_modes(val.vectors, val.labels, centers, calib_pairs),
                               per_target_r(val.vectors, val.labels))
    return {"centers": centers, "calibration": calib, "calibration_pairs": calib_pairs,
            "calibration_centered": calib_c, "calibration_pairs_centered": calib_pairs_c,
            "search": search}


def train(features: Features | str | os.PathLike, out: str | os.PathLike,
          preset_name: str = "default", config: TrainConfig | None = None, seed: int = 0,
          split_seed: int = 0, threads: int | None = 1,
          init: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train heads on ``features`` and write a run folder at ``out``; returns a summary.

    ``init``: a bound run (``unibind bind``) to start from; see ``unibind.training.warm_start``."""
    from unibind.training.warm_start import check_trainable, train_from_bound

    feats = features if isinstance(features, Features) else load_features(features)
    cfg = config or preset(preset_name)
    if init is not None:
        return train_from_bound(feats, init, out, preset_name, cfg, seed, split_seed, threads)
    cfg = check_trainable(feats, cfg)
    res = fit(feats, cfg, seed=seed, split_seed=split_seed, threads=threads,
              base=preset_base(preset_name))
    stats = space_stats(res.heads, feats, res.split)
    out = Path(out)
    info = run_info(feats, out, preset_name, cfg, seed, res, stats)
    save_run(out, res.heads, info, centers=stats["centers"])
    log.info("wrote run %s (best epoch %d, val mAP@10 %s)", out, res.best_epoch, res.best_val)
    return {"run": str(out), "preset": preset_name, "seed": seed, "epochs": len(res.curve),
            "best_epoch": res.best_epoch, "val_mAP@10": res.best_val,
            "stopped_early": res.stopped_early, "seconds": round(res.seconds, 3),
            "split": res.split_info, "search": {k: stats["search"][k] for k in ("center", "mode")}}


def run_info(feats: Features, out: Path, preset_name: str, cfg: TrainConfig, seed: int,
             res: FitResult, stats: dict[str, Any], extra: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    fpath = None
    if feats.path is not None:
        fpath = os.path.relpath(Path(feats.path).resolve(), out.resolve().parent / out.name)
    return {"format": FORMAT, "encoders": feats.meta.get("encoders", {}), "features": fpath,
            "synthetic": feats.meta.get("synthetic"), "preset": preset_name,
            "config": to_dict(cfg), "seed": seed, "data_digest": data_digest(feats),
            "modalities": feats.modalities, "split": res.split_info, "curve": res.curve,
            "best_epoch": res.best_epoch, "best_val_mAP@10": res.best_val,
            "stopped_early": res.stopped_early, "train_seconds": res.seconds,
            **{k: stats[k] for k in ("calibration", "calibration_pairs", "calibration_centered",
                                     "calibration_pairs_centered")},
            "search": stats["search"], **(extra or {})}
