"""Hyper-parameter search with Optuna on validation data (the test split is never looked at).

Search space: lr, D, temperature init, pair weights, positives, MSE weight. Objective: the
validation criterion training selects on (the base preset's ``select``: class mAP@10, or for
``default`` the mean of instance MRR and class mAP@10), minus a penalty when no mixed-search
mode meets the balance constraint (share@10 within 10 points of pool share and R@10 within 2
points of per-target search). The best config is written as JSON that ``unibind train
--config`` accepts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

from unibind.errors import UsageError
from unibind.eval.calibration import MAX_R10_DROP, MAX_SHARE_DEV, space_stats
from unibind.features.folder import Features, load_features
from unibind.training.config import TrainConfig, override, pair_names, preset
from unibind.training.fit import fit
from unibind.util.jsonio import to_dict, write_json_atomic

log = logging.getLogger(__name__)

SEARCH_SPACE = {
    "lr": "log-uniform [1e-4, 1e-2]",
    "embed_dim": "one of 64, 128, 256, 512",
    "temperature": "log-uniform [0.02, 0.2]",
    "pair_weights": "uniform [0.2, 1.0] per pair",
    "positives": "instance | class | both",
    "mse_weight": "uniform [0, 0.5]",
}


def suggest(trial: Any, base: TrainConfig) -> TrainConfig:
    """One point of the search space (an Optuna trial) on top of ``base``."""
    return dataclasses.replace(
        base,
        lr=trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        embed_dim=trial.suggest_categorical("embed_dim", [64, 128, 256, 512]),
        temperature=trial.suggest_float("temperature", 0.02, 0.2, log=True),
        pair_weights={p: trial.suggest_float(f"w_{p}", 0.2, 1.0) for p in pair_names()},
        positives=trial.suggest_categorical("positives", ["instance", "class", "both"]),
        mse_weight=trial.suggest_float("mse_weight", 0.0, 0.5),
    )


def balance_penalty(search: dict[str, Any]) -> float:
    """0 when some mode meets both constraints, else the smallest total violation."""
    table = search.get("validation") or {}
    if not table:
        return 0.0
    return min(max(0.0, v["share_dev"] - MAX_SHARE_DEV) + max(0.0, v["drop"] - MAX_R10_DROP)
               for v in table.values())


def score_config(feats: Features, cfg: TrainConfig, seed: int = 0) -> dict[str, Any]:
    """Fit one config and score it on validation data (mAP@10 with a mixed-search penalty)."""
    res = fit(feats, cfg, seed=seed)
    if res.best_val is None:
        raise UsageError("tuning needs a validation split (val_fraction > 0 or manifest 'val')")
    stats = space_stats(res.heads, feats, res.split)
    penalty = balance_penalty(stats["search"])
    return {"val_score": res.best_val, "val_mAP@10": res.best_entry.get("val_mAP@10"),
            "penalty": penalty, "objective": res.best_val - penalty,
            "epochs": len(res.curve), "mode": stats["search"]["mode"]}


def tune(features: Features | str | os.PathLike, trials: int = 20,
         out: str | os.PathLike | None = None, base: str = "default", seed: int = 0,
         epochs: int | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Run ``trials`` Optuna trials; write the best config to ``out`` (JSON) if given."""
    import optuna

    feats = features if isinstance(features, Features) else load_features(features)
    base_cfg = override(preset(base), epochs=epochs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def objective(trial: Any) -> float:
        cfg = suggest(trial, base_cfg)
        result = score_config(feats, cfg, seed)
        history.append({"trial": trial.number, "params": trial.params, **result})
        log.info("trial %d: objective %.4f (val score %.4f, penalty %.4f)", trial.number,
                 result["objective"], result["val_score"], result["penalty"])
        return result["objective"]

    study.optimize(objective, n_trials=trials, timeout=timeout)
    best_cfg = suggest(optuna.trial.FixedTrial(study.best_params), base_cfg)
    best = history[study.best_trial.number]
    summary = {"best": {"objective": study.best_value, **{k: best[k] for k in
                                                          ("val_score", "val_mAP@10", "penalty",
                                                           "mode")}},
               "config": to_dict(best_cfg), "base": base, "seed": seed, "trials": len(history),
               "seconds": round(time.perf_counter() - t0, 2), "search_space": SEARCH_SPACE,
               "history": history}
    if out is not None:
        write_json_atomic(Path(out), summary)
        summary["written"] = str(out)
    return summary
