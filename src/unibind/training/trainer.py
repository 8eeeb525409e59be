"""features -> run: ``train()`` writes a run folder, from new heads or from a bound run's
(``init``, see ``unibind.training.warm_start``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from unibind.eval.calibration import space_stats
from unibind.features.folder import Features, load_features
from unibind.run.folder import save_run
from unibind.training.config import TrainConfig, preset
from unibind.training.fit import fit, preset_base, run_info
from unibind.training.warm_start import check_trainable, train_from_bound

log = logging.getLogger(__name__)


def train(features: Features | str | os.PathLike, out: str | os.PathLike,
          preset_name: str = "default", config: TrainConfig | None = None, seed: int = 0,
          split_seed: int = 0, threads: int | None = 1,
          init: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train heads on ``features`` and write a run folder at ``out``; returns a summary.

    ``init``: a bound run (``unibind bind``) to start from; see ``unibind.training.warm_start``."""
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
