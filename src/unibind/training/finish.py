"""The last step of every training path: space statistics, run.json, the run folder, a summary.

``train`` (new heads or a bound start), ``train --init`` (candidates from a bound run) and
``train --finetune`` all end here (``finish_run``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unibind.eval.calibration import space_stats
from unibind.features.folder import Features
from unibind.run.folder import save_run
from unibind.run.heads import Heads
from unibind.training.config import TrainConfig
from unibind.training.fit import run_info
from unibind.training.loop import FitResult

log = logging.getLogger(__name__)


def finish_run(feats: Features, out: str | Path, heads: Heads, res: FitResult, preset_name: str,
               cfg: TrainConfig, seed: int, *, info_extra: dict[str, Any] | None = None,
               summary_extra: dict[str, Any] | None = None,
               write_extra: Callable[[Path], dict[str, Any]] | None = None,
               stats_features: Features | None = None) -> dict[str, Any]:
    """Write ``heads`` as a run at ``out`` and return train's summary.

    ``info_extra``: more run.json fields; ``summary_extra``: more summary fields;
    ``write_extra``: writes more files into the staged run (``save_run``'s ``extra``);
    ``stats_features``: the features for the space statistics (default ``feats``)."""
    stats = space_stats(heads, stats_features or feats, res.split)
    out = Path(out)
    info = run_info(feats, out, preset_name, cfg, seed, res, stats, extra=info_extra)
    save_run(out, heads, info, centers=stats["centers"], extra=write_extra)
    val = res.best_entry.get("val_mAP@10", res.best_val)
    log.info("wrote run %s (best epoch %d, val mAP@10 %s)", out, res.best_epoch, val)
    return {"run": str(out), "preset": preset_name, "seed": seed, "epochs": len(res.curve),
            "best_epoch": res.best_epoch, "val_mAP@10": info.get("best_val_mAP@10", val),
            "val_score": info.get("best_val_score"),
            "stopped_early": res.stopped_early, "seconds": round(res.seconds, 3),
            "split": res.split_info,
            "search": {k: stats["search"][k] for k in ("center", "mode")},
            **(summary_extra or {})}
