"""features -> run: ``train()`` writes a run folder, from new heads, from a bound start
(``unibind.training.bound_start``, the ``default`` preset) or from a bound run's heads with
candidates (``init`` with another preset, see ``unibind.training.warm_start``)."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from unibind.features.folder import Features, load_features
from unibind.run.folder import Run
from unibind.training.bound_start import (
    bound_summary,
    interpolate,
    residual_heads,
    resolve_init,
    soup,
    text_block,
)
from unibind.training.config import TrainConfig, preset
from unibind.training.finish import finish_run
from unibind.training.fit import fit, preset_base
from unibind.training.loop import validation_scores
from unibind.training.warm_start import check_trainable, train_from_bound

log = logging.getLogger(__name__)

FEW_GROUPS = 50  # fewer training groups than this: say that bind may serve better


def train(features: Features | str | os.PathLike, out: str | os.PathLike,
          preset_name: str = "default", config: TrainConfig | None = None, seed: int = 0,
          split_seed: int = 0, threads: int | None = 1,
          init: str | os.PathLike | None = "auto") -> dict[str, Any]:
    """Train heads on ``features`` and write a run folder at ``out``; returns a summary.

    ``init``: ``"auto"`` (start from the bound run when the preset does and the features can
    be bound), ``"none"`` (new heads) or a bound run (``unibind bind``) to start from."""
    feats = features if isinstance(features, Features) else load_features(features)
    cfg = config or preset(preset_name)
    explicit = init is not None and str(init) not in ("auto", "none")
    if explicit and not cfg.bound_start:
        return train_from_bound(feats, init, out, preset_name, cfg, seed, split_seed, threads)
    cfg = check_trainable(feats, cfg)
    with tempfile.TemporaryDirectory(prefix="unibind-bound-") as tmp:
        bound = resolve_init(feats, init, cfg, split_seed, Path(tmp) / "bound")
        if bound is None:
            res = fit(feats, cfg, seed=seed, split_seed=split_seed, threads=threads,
                      base=preset_base(preset_name))
            return finish_run(feats, out, res.heads, res, preset_name, cfg, seed,
                              summary_extra=few_groups(res))
        return train_bound_start(feats, bound, out, preset_name, cfg, seed, split_seed,
                                 threads, keep=not explicit)


def few_groups(res: Any) -> dict[str, Any]:
    """A note when the training split is small (metrics rest on few queries)."""
    n = int((res.split_info or {}).get("groups", {}).get("train", FEW_GROUPS))
    if n >= FEW_GROUPS:
        return {}
    note = (f"only {n} training groups: too few to learn a space reliably (validation figures "
            "rest on a handful of queries); `unibind bind` needs no training data")
    log.warning(note)
    return {"note": note}


def train_bound_start(feats: Features, bound: Run, out: str | os.PathLike, preset_name: str,
                      cfg: TrainConfig, seed: int = 0, split_seed: int = 0,
                      threads: int | None = 1, keep: bool = True) -> dict[str, Any]:
    """Residual heads on ``bound``, trained, then interpolated with the share chosen on
    validation (see ``unibind.training.bound_start``). ``keep``: store the bound run inside
    the new run (``RUN/bound``; evaluate shows it side by side)."""
    viewed = feats.with_views(bound.views)
    with torch.random.fork_rng(devices=[]):  # the new layers depend on the seed alone
        torch.manual_seed(seed)
        start = residual_heads(bound, viewed, cfg)
    fits = [fit(viewed, cfg, seed=seed + i, split_seed=split_seed, threads=threads,
                base=preset_base(preset_name), heads=copy.deepcopy(start))
            for i in range(cfg.soup)]
    res = fits[0]
    if len(fits) > 1:
        res.heads = soup([f.heads for f in fits])
        res.seconds = sum(f.seconds for f in fits)
    mods = [m for m in text_block(bound)[0] if m in viewed.modalities]
    val = res.split == "val"
    shares: dict[str, dict[str, float]] = {}
    if val.any():
        for share in sorted({0.0, *cfg.mix_shares}):
            h = interpolate(start, res.heads, share, mods)
            shares[f"{share:g}"] = validation_scores(h, viewed, val, cfg.val_queries, cfg.select)
        best = max(shares, key=lambda a: (round(shares[a]["score"], 4), float(a)))
    else:
        best = f"{max(cfg.mix_shares):g}"
    heads = interpolate(start, res.heads, float(best), mods)
    log.info("bound start: trained share %s (val score %s)", best,
             shares.get(best, {}).get("score"))
    choice = {"from": "bound run (in this run: bound/)" if keep else str(bound.path),
              "bound": bound_summary(bound), "share": float(best),
              "rule": "WiSE-FT share of the trained heads (bound heads: 0) with the best "
                      "validation score (" + ("mean of instance MRR and class mAP@10" if
                                              cfg.select == "both" else "class mAP@10") + ")",
              "validation": shares, "soup": cfg.soup,
              "soup_best_epochs": [f.best_epoch for f in fits]}
    info: dict[str, Any] = {"made_by": "train" if keep else "train --init",
                            "views": bound.views, "init": {
                                "run": "bound" if keep else str(Path(bound.path).resolve()),
                                "kept": f"share {best}", **choice}}
    if best in shares:
        info["best_val_score"] = shares[best]["score"]
        info["best_val_mAP@10"] = shares[best]["mAP@10"]

    def write_bound(tmp: Path) -> dict[str, Any]:
        if keep:
            shutil.copytree(bound.path, tmp / "bound")
            meta = json.loads((tmp / "bound" / "run.json").read_text())
            if viewed.path is not None:
                meta["features"] = os.path.relpath(Path(viewed.path).resolve(),
                                                   (tmp / "bound").resolve())
            (tmp / "bound" / "run.json").write_text(json.dumps(meta, indent=1))
        return info

    summary = finish_run(viewed, out, heads, res, preset_name, cfg, seed, write_extra=write_bound,
                         summary_extra={"kept": f"share {best} of the trained heads",
                                        "share": float(best), **few_groups(res)})
    if best in shares:
        summary["val_mAP@10"], summary["val_score"] = (shares[best]["mAP@10"],
                                                       shares[best]["score"])
    return summary


__all__ = ["train", "train_bound_start"]
