"""features -> run: train per-modality heads contrastively on the training split.

``fit`` is the in-memory loop (used by ``train`` and ``tune``); ``train`` adds the held-out split,
centres, score calibration, the recommended search mode and writes the run folder.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unibind.errors import UsageError
from unibind.eval.calibration import (
    apply_centers,
    compare_modes,
    modality_centers,
    per_target_r,
    recommend,
    score_stats,
)
from unibind.eval.metrics import cross_modal_mean, pair_metrics
from unibind.features.splits import assign_splits
from unibind.features.store import Features, load_features
from unibind.run.folder import save_run
from unibind.run.heads import Heads, HeadsConfig
from unibind.train.batches import Triplets
from unibind.train.config import TrainConfig, check_config, preset
from unibind.train.losses import total_loss
from unibind.util.jsonio import to_dict

log = logging.getLogger(__name__)
FORMAT = 1


@dataclass
class FitResult:
    heads: Heads
    curve: list[dict[str, Any]]
    best_epoch: int
    best_val: float | None
    stopped_early: bool
    seconds: float
    split: Any = None
    split_info: dict[str, Any] = field(default_factory=dict)


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


def make_heads(features: Features, cfg: TrainConfig) -> Heads:
    dims = {m: features.dims[m] for m in features.modalities}  # canonical order: same init
    hcfg = HeadsConfig(dims=dims, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                       dropout=cfg.dropout, logit_scale_init=1.0 / cfg.temperature,
                       logit_scale_max=cfg.logit_scale_max)
    heads = Heads(hcfg)
    heads.log_logit_scale.requires_grad_(cfg.learn_scale)
    return heads


@torch.no_grad()
def embed_items(heads: Heads, features: Features, mask: np.ndarray, max_per_modality: int = 0,
                seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Unit embeddings and labels of the selected items, per modality (optionally subsampled)."""
    was = heads.training
    heads.eval()
    items = features.items[mask]
    embs, labels = {}, {}
    rng = np.random.default_rng(seed)
    for m in features.modalities:
        sub = items[items["modality"] == m]
        if max_per_modality and len(sub) > max_per_modality:
            sub = sub.iloc[np.sort(rng.choice(len(sub), max_per_modality, replace=False))]
        if len(sub) == 0:
            continue
        x = torch.from_numpy(features.arrays[m][sub["row"].to_numpy()])
        embs[m] = heads.embed(m, x).numpy()
        labels[m] = sub["label"].astype(str).to_numpy()
    heads.train(was)
    return embs, labels


def _lr_lambda(cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "constant":
        return lambda step: 1.0
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


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
        threads: int | None = 1, heads: Heads | None = None) -> FitResult:
    """Train heads on the training split; early stopping on validation cross-modal mAP@10.

    ``threads``: torch intra-op threads while training (``None``: leave as is). One thread is
    fastest for small heads on a busy CPU and makes the float sums thread-count independent.
    ``heads``: start from these (e.g. a bound run's, ``train --init``) instead of new ones.
    The caller's torch thread count and random state are the same afterwards."""
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        return _fit(features, cfg, seed, split_seed, heads)


def _fit(features: Features, cfg: TrainConfig, seed: int, split_seed: int,
         init: Heads | None = None) -> FitResult:
    check_config(cfg)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    split, split_info = assign_splits(features.items, cfg.val_fraction, cfg.test_fraction,
                                      split_seed)
    split = split.to_numpy()
    mods = features.modalities
    trip = Triplets.from_items(features.items[split == "train"], mods, seed)
    if trip.n_groups < 2:
        raise UsageError(f"only {trip.n_groups} training group(s): nothing to contrast")
    xs = {m: torch.from_numpy(np.ascontiguousarray(features.arrays[m])) for m in mods}
    labels = torch.from_numpy(trip.labels.copy())
    heads = make_heads(features, cfg) if init is None else init
    params = [p for p in heads.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(trip.n_groups // cfg.batch_size, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_per_epoch * cfg.epochs))
    has_val = bool((split == "val").any())
    curve: list[dict[str, Any]] = []
    best_val, best_epoch, best_state, since = -1.0, 0, None, 0
    stopped, t_start = False, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        heads.train()
        rows = trip.sample(rng)
        perm = rng.permutation(trip.n_groups)
        loss_sum, n_batches, parts_sum = 0.0, 0, {}
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size] if b < steps_per_epoch - 1 \
                else perm[b * cfg.batch_size:]
            present, embs = {}, {}
            for m in mods:
                r = rows[m][idx]
                present[m] = torch.from_numpy(r >= 0)
                embs[m] = heads.embed(m, xs[m][torch.from_numpy(np.maximum(r, 0))])
            loss, parts = total_loss(embs, present, labels[torch.from_numpy(idx)],
                                     heads.logit_scale(), cfg.pair_weights, cfg.positives,
                                     cfg.mse_weight)
            if not loss.requires_grad:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach())
            n_batches += 1
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
        entry: dict[str, Any] = {
            "epoch": epoch, "loss": loss_sum / max(n_batches, 1),
            "parts": {k: v / max(n_batches, 1) for k, v in parts_sum.items()},
            "logit_scale": float(heads.logit_scale().detach()),
            "lr": float(sched.get_last_lr()[0]), "seconds": time.perf_counter() - t0}
        if has_val:
            t1 = time.perf_counter()
            ve, vl = embed_items(heads, features, split == "val", cfg.val_queries, seed=0)
            entry["val_mAP@10"] = cross_modal_mean(pair_metrics(ve, vl, ks=(1,)))
            entry["val_seconds"] = time.perf_counter() - t1
            if entry["val_mAP@10"] > best_val:
                best_val, best_epoch, since = entry["val_mAP@10"], epoch, 0
                best_state = copy.deepcopy(heads.state_dict())
            else:
                since += 1
        curve.append(entry)
        log.info("epoch %d/%d loss %.4f val mAP@10 %s (%.2fs)", epoch, cfg.epochs,
                 entry["loss"], f"{entry.get('val_mAP@10', float('nan')):.4f}",
                 entry["seconds"])
        if has_val and cfg.patience > 0 and since >= cfg.patience:
            stopped = True
            log.info("early stop: no validation gain for %d epochs", cfg.patience)
            break
    if cfg.patience > 0 and best_state is not None:
        heads.load_state_dict(best_state)
    else:
        best_epoch = len(curve)
        best_val = curve[-1].get("val_mAP@10")
    heads.eval()
    return FitResult(heads=heads, curve=curve, best_epoch=best_epoch,
                     best_val=best_val if has_val else None, stopped_early=stopped,
                     seconds=time.perf_counter() - t_start, split=split, split_info=split_info)


def space_stats(heads: Heads, features: Features, split: np.ndarray) -> dict[str, Any]:
    """Centres + calibration (training data) and the recommended mixed mode (validation)."""
    train_e, _ = embed_items(heads, features, split == "train", 20000, seed=0)
    centers = modality_centers(train_e)
    calib, calib_pairs = score_stats(train_e)
    calib_c, calib_pairs_c = score_stats(apply_centers(train_e, centers))
    search: dict[str, Any] = {"center": False, "mode": "balanced", "rule": "no validation data"}
    if (split == "val").any():
        ve, vl = embed_items(heads, features, split == "val", 2000, seed=0)
        if len(ve) > 1:
            search = recommend(compare_modes(ve, vl, centers, calib_pairs),
                               per_target_r(ve, vl))
    return {"centers": centers, "calibration": calib, "calibration_pairs": calib_pairs,
            "calibration_centered": calib_c, "calibration_pairs_centered": calib_pairs_c,
            "search": search}


def train(features: Features | str | os.PathLike, out: str | os.PathLike,
          preset_name: str = "default", config: TrainConfig | None = None, seed: int = 0,
          split_seed: int = 0, threads: int | None = 1,
          init: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train heads on ``features`` and write a run folder at ``out``; returns a summary.

    ``init``: a bound run (``unibind bind``) to start from; see ``unibind.train.warm_start``."""
    from unibind.train.warm_start import check_trainable, train_from_bound

    feats = features if isinstance(features, Features) else load_features(features)
    cfg = config or preset(preset_name)
    if init is not None:
        return train_from_bound(feats, init, out, preset_name, cfg, seed, split_seed, threads)
    cfg = check_trainable(feats, cfg)
    res = fit(feats, cfg, seed=seed, split_seed=split_seed, threads=threads)
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
