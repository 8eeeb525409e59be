"""``train --init RUN``: start the heads from a bound run, never end worse than it.

Three candidates are trained on the same split: ``tuned`` (every head starts from the bound run
and trains), ``added`` (the bound heads stay frozen, only modalities the bound run lacks train,
e.g. offline audio) and ``scratch`` (the recipe from random heads, as plain ``train``). Per
modality, a ``tuned`` or ``added`` head may be taken (they share one head layout); ``scratch``
competes as a whole. On validation data, the choice whose every pair the bound run covers is at
least the bound run's figure and whose mean cross-modal mAP@10 is highest wins; the all-bound
choice always qualifies, so the result is never below zero-shot on validation data.

``check_trainable`` says what training needs when labels or groups are missing.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from unibind.errors import UsageError
from unibind.eval.metrics import cross_modal_mean, pair_metrics
from unibind.features.folder import Features
from unibind.features.splits import group_keys
from unibind.run.folder import Run
from unibind.run.heads import Heads, HeadsConfig
from unibind.training.config import TrainConfig

log = logging.getLogger(__name__)


def check_trainable(feats: Features, cfg: TrainConfig) -> TrainConfig:
    """The config training can use on ``feats``; a clear UsageError when it cannot train.

    Training contrasts items tied across modalities: by a shared ``group`` (image k, caption k,
    sound k) or by a shared label. Without labels, class positives would make every item a
    positive of every other: instance positives (groups) are used instead."""
    items = feats.items
    labelled = bool((items["label"].fillna("").astype(str).str.strip() != "").any())
    linked = int((items.groupby(group_keys(items))["modality"].nunique() > 1).sum())
    if not labelled and linked == 0:
        raise UsageError(
            "training needs items tied across modalities, and these have neither labels nor "
            "groups linking two modalities. Give labels (`unibind data folder DIR --labels "
            "dirs`, or a `label` column) or groups (files sharing a stem, e.g. beach.jpg + "
            "beach.wav + beach.txt, or a `group` column) -- or use `unibind bind`, which needs "
            "neither.")
    if not labelled and cfg.positives in ("class", "both"):
        log.warning("no labels: training with instance positives (%d groups link modalities)",
                    linked)
        cfg = replace(cfg, positives="instance")
    elif linked == 0 and cfg.positives == "both":
        log.info("no group links two modalities: training with class positives only")
        cfg = replace(cfg, positives="class")
    return cfg


def start_heads(run: Run, feats: Features, cfg: TrainConfig, freeze_bound: bool = False
                ) -> Heads:
    """Heads in the bound run's layout with its weights; modalities it lacks (or holds in a
    space of their own, ``own_space``) get a new linear head on unit inputs. ``freeze_bound``:
    the bound heads do not train."""
    base = run.heads.cfg
    dims, kinds = dict(base.dims), dict(base.kinds)
    for m in feats.modalities:
        if m in dims and feats.dims[m] != dims[m]:
            raise UsageError(f"--init {run.path}: its {m} head takes {dims[m]}-d features, these "
                             f"features have {feats.dims[m]}-d (extracted with other encoders)")
        if m not in dims:
            dims[m], kinds[m] = feats.dims[m], {"kind": "linear", "normalize_input": True}
    heads = Heads(HeadsConfig(dims=dims, embed_dim=base.embed_dim, hidden=0, kinds=kinds,
                              logit_scale_init=1.0 / cfg.temperature,
                              logit_scale_max=cfg.logit_scale_max))
    own = own_space(run)  # no text side in the bound run: a fresh head, as a missing modality
    state = {f"proj.{k}": v for k, v in run.heads.proj.state_dict().items()
             if k.split(".")[0] not in own}
    missing = heads.load_state_dict(state, strict=False).missing_keys
    known = {k for k in missing if k.startswith("proj.") and k.split(".")[1] in run.modalities
             and k.split(".")[1] not in own}
    if known:
        raise UsageError(f"--init {run.path}: heads do not match its layout ({sorted(known)})")
    heads.log_logit_scale.requires_grad_(cfg.learn_scale)
    if freeze_bound:
        for m in run.modalities:
            if m not in own:
                heads.proj[m].requires_grad_(False)
    return heads


def own_space(run: Run) -> set[str]:
    """Modalities of a bound run that reach only themselves (``Run.reach``: no text side)."""
    return {m for m in run.modalities if not set(run.reach.get(m, run.modalities)) - {m}}


def _val_pairs(heads: Heads, feats: Features, split: np.ndarray) -> dict[str, dict[str, float]]:
    from unibind.run.embed import embed_items

    val = embed_items(heads, feats, split == "val", 2000, seed=0)
    return pair_metrics(val.vectors, val.labels)


def _mix(tuned: Heads, added: Heads, pick: dict[str, str]) -> Heads:
    heads = copy.deepcopy(tuned)
    for m, source in pick.items():
        if source == "added":
            heads.proj[m].load_state_dict(added.proj[m].state_dict())
    heads.eval()
    return heads


def _value(metrics: dict[str, Any] | None) -> float:
    """A pair's mAP@10; -1 when absent or not measured."""
    v = (metrics or {}).get("mAP@10")
    return -1.0 if v is None else float(v)


def choose(candidates: dict[str, tuple[Heads, dict[str, dict[str, float]]]],
           floor: dict[str, float]) -> tuple[str, dict[str, Any]]:
    """The candidate with the best mean cross-modal mAP@10 among those at or above ``floor``
    (the bound run's mAP@10 per pair it covers)."""
    table = {}
    for name, (_, pairs) in candidates.items():
        ok = all(_value(pairs.get(p)) >= v - 1e-9 for p, v in floor.items() if v is not None)
        table[name] = {"mean_mAP@10": cross_modal_mean(pairs) or 0.0, "meets_floor": ok,
                       "pairs": {p: None if v["mAP@10"] is None else round(v["mAP@10"], 4)
                                 for p, v in pairs.items()}}
    eligible = [n for n, t in table.items() if t["meets_floor"]] or list(table)
    best = max(eligible, key=lambda n: table[n]["mean_mAP@10"])
    return best, table


def train_from_bound(feats: Features, init: str | os.PathLike, out: str | os.PathLike,
                     preset_name: str, cfg: TrainConfig, seed: int = 0, split_seed: int = 0,
                     threads: int | None = 1) -> dict[str, Any]:
    """See the module doc; writes the run at ``out`` and returns train's summary + the choice."""
    from unibind.training.finish import finish_run
    from unibind.training.fit import fit

    run = Run.load(init)
    if run.info.get("made_by") != "bind":
        log.warning("--init %s was not made by `unibind bind`; using its heads anyway", init)
    feats = feats.with_views(run.views)
    cfg = check_trainable(feats, cfg)
    tuned = fit(feats, cfg, seed=seed, split_seed=split_seed, threads=threads,
                heads=start_heads(run, feats, cfg))
    split = tuned.split
    new = [m for m in feats.modalities if m not in run.modalities or m in own_space(run)]
    if new:
        added = fit(feats, cfg, seed=seed, split_seed=split_seed, threads=threads,
                    heads=start_heads(run, feats, cfg, freeze_bound=True)).heads
    else:
        added = start_heads(run, feats, cfg)
    scratch = fit(feats, cfg, seed=seed, split_seed=split_seed, threads=threads)
    in_bound = feats.items["modality"].isin(run.modalities).to_numpy()
    bound_pairs = _val_pairs(run.heads, _only(feats, run.modalities), split[in_bound])
    floor = {p: v["mAP@10"] for p, v in bound_pairs.items()  # cross-modal pairs it reaches
             if (q := p.split("->"))[0] != q[1] and q[1] in run.reach.get(q[0], [q[1]])}
    bound_mods = [m for m in run.modalities if m in feats.modalities]
    candidates: dict[str, tuple[Heads, dict]] = {}
    for choice in itertools.product(("tuned", "added"), repeat=len(bound_mods)):
        pick = dict(zip(bound_mods, choice))
        heads = _mix(tuned.heads, added, pick)
        name = ",".join(f"{m}={'bound' if s == 'added' else 'tuned'}" for m, s in pick.items())
        candidates[name] = (heads, _val_pairs(heads, feats, split))
    candidates["scratch"] = (scratch.heads, _val_pairs(scratch.heads, feats, split))
    best, table = choose(candidates, floor)
    heads = candidates[best][0]
    log.info("--init: kept %s (val mean mAP@10 %.4f; bound floor %s)", best,
             table[best]["mean_mAP@10"], {p: round(v, 3) for p, v in floor.items()})
    res = scratch if best == "scratch" else tuned
    res.heads = heads
    summary = finish_run(feats, out, heads, res, preset_name, cfg, seed, info_extra={
        "made_by": "train --init", "views": run.views, "best_val_mAP@10":
            table[best]["mean_mAP@10"],
        "init": {"run": str(Path(init).resolve()), "kept": best, "bound_val_mAP@10": floor,
                 "candidates": table}}, summary_extra={"kept": best, "candidates": table})
    summary["val_mAP@10"] = table[best]["mean_mAP@10"]
    return summary


def _only(feats: Features, modalities: list[str]) -> Features:
    from unibind.binding.bind import head_features

    return head_features(feats, [m for m in feats.modalities if m in modalities])


__all__ = ["check_trainable", "choose", "own_space", "start_heads", "train_from_bound"]
