"""run -> metrics.json + metrics.md, on held-out data the heads never saw.

The split is recomputed from the run's stored split parameters (and checked against its digest),
every item of the split is projected with the run's heads (``Run.embed``), and:

- ``pairs``: every query modality -> target modality (3x3) Recall@1/5/10, mAP@10, MRR, median
  rank and query count, at the collection's relevance (class level when labels exist);
- ``instance``: the same at instance level (same group: the thing itself) whenever groups link
  items across modalities (``eval.levels``); pairs without queries are not measured (``None``)
  and every mean leaves them out; ``warnings`` name pairs resting on few queries;
- ``zero_shot``: per modality, accuracy of the nearest class prompt (``eval.zero_shot``: the
  label's text embedded with the run's text encoder, or prompt features stored in the features);
- ``mixed``: one pool of every modality, per mixed-search mode: share@10 per modality vs its pool
  share (overall and per query modality) and cross-modal R@10 of the merged list;
- ``modality_gap``: distance between modality centroids, raw and after centring.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unibind.eval.calibration import apply_centers, compare_modes, recommend
from unibind.eval.compare import side_by_side, versus_markdown
from unibind.eval.levels import (
    INSTANCE_NOTE,
    MIN_QUERIES,
    coverage,
    group_labels,
    groups_link,
    level,
    means,
)
from unibind.eval.metrics import cross_modal_mean, modality_gap, pair_metrics
from unibind.eval.tables import pairs_table, shares_table, zero_shot_table
from unibind.eval.zero_shot import zero_shot
from unibind.features.folder import Features
from unibind.features.splits import group_keys
from unibind.run.folder import Run
from unibind.search.merge import MODES
from unibind.util.atomic import atomic_file
from unibind.util.jsonio import write_json_atomic
from unibind.util.tables import fmt

log = logging.getLogger(__name__)


RELEVANCE = {
    "label": "class level: same label",
    "group": "pair level: same group (no labels; e.g. files sharing a stem)",
    "none": "none: no labels and no groups linking modalities",
}
NOT_MEASURED = {
    "group": ["class-level retrieval and zero-shot classification (need labels)"],
    "none": ["retrieval quality, zero-shot classification and mixed-search shares (need labels "
             "or groups linking modalities: `unibind data folder --labels dirs`, or files "
             "sharing a stem)"],
}


def relevance_of(items: pd.DataFrame) -> str:
    """What makes a result relevant in these items: ``label``, ``group`` or ``none``."""
    if (items["label"].fillna("").astype(str).str.strip() != "").any():
        return "label"
    linked = items.groupby(group_keys(items))["modality"].nunique() > 1
    return "group" if linked.any() else "none"


def headless(run: Run, feats: Features) -> list[str]:
    """Modalities the features hold but the run has no head for, and why."""
    why = (run.info.get("bound") or {}).get("not_available", {})
    return [f"{m}: {why.get(m, 'the run has no head for it')}" for m in feats.modalities
            if m not in run.modalities]


def evaluate(run_path: str | os.PathLike, split: str = "test",
             features: Features | str | os.PathLike | None = None,
             modes: tuple[str, ...] = MODES, write: bool = True, *,
             allow_split_mismatch: bool = False,
             versus: list[str | os.PathLike] | None = None, compare_init: bool = True
             ) -> dict[str, Any]:
    """Compute the run's metrics on ``split``; writes RUN/metrics.json + metrics.md (test split)
    or RUN/metrics-<split>.json/.md, unless ``write=False``. A split digest mismatch (possible
    leak) raises unless ``allow_split_mismatch=True``.

    ``versus``: other runs evaluated on the same split, shown side by side (a run trained with
    ``--init`` is always compared with the bound run it started from)."""
    run = Run.load(run_path)
    feats = run.load_features(features)
    emb = run.embed(feats, split=split, allow_split_mismatch=allow_split_mismatch)
    relevance = relevance_of(feats.items)
    embs = emb.vectors
    if relevance == "label":
        labels = emb.labels
    elif relevance == "group":  # the key that decides relevance: the item's group
        labels = {m: group_keys(emb.table(m)).astype(str).to_numpy() for m in embs}
    else:
        labels = {m: np.array([f"item{i}" for i in range(len(e))]) for m, e in embs.items()}
    pairs = pair_metrics(embs, labels) if relevance != "none" else {}
    reach = run.reach  # a bound run's own-space modality: its pairs with others score 0

    def reachable(p: str) -> bool:
        query, target = p.split("->")
        return target in reach.get(query, [])

    unreachable = [p for p in pairs if not reachable(p)]
    pairs = {p: v for p, v in pairs.items() if reachable(p)}
    instance = None
    if relevance != "none" and groups_link(emb.items):
        kept = {p: v for p, v in level(embs, group_labels(emb))["pairs"].items() if reachable(p)}
        instance = {"pairs": kept, "cross_modal": means(kept)}
    missing, thin = coverage(pairs, "class" if relevance == "label" else "pair")
    if instance is not None and relevance == "label":
        more = coverage(instance["pairs"], "instance")
        missing, thin = missing + more[0], thin + more[1]
    for line in thin:
        log.warning(line)
    zs, zs_note = (zero_shot(run, feats, embs, labels) if relevance == "label"
                   else ({}, "skipped: needs labels"))
    calib = run.info.get("calibration_pairs") or {
        q: run.info.get("calibration", {}) for q in embs}
    mixed = (compare_modes(embs, labels, run.centers, calib, modes=modes)
             if len(embs) > 1 and relevance != "none" else {})
    per_target = cross_modal_mean(pairs, "R@10")
    check = recommend(mixed, per_target)["validation"] if mixed else {}
    metrics = {
        "split": split, "run": str(run.path), "head_digest": run.head_digest,
        "data_digest": run.info.get("data_digest"), "preset": run.info.get("preset"),
        "made_by": run.info.get("made_by", "train"), "relevance": relevance,
        "relevance_note": RELEVANCE[relevance],
        "not_measured": NOT_MEASURED.get(relevance, []) + headless(run, feats) + missing + (
            [f"{', '.join(unreachable)}: out of reach in this run (run.json reach)"]
            if unreachable else []),
        "warnings": thin, "min_queries": MIN_QUERIES,
        "n_items": {m: int(len(e)) for m, e in embs.items()},
        "pairs": pairs,
        "cross_modal": means(pairs),
        "instance": instance, "instance_note": INSTANCE_NOTE if instance else None,
        "zero_shot": zs, "zero_shot_note": zs_note,
        "mixed": mixed, "mixed_check": check, "per_target_R@10": per_target,
        "search": {k: run.info.get("search", {}).get(k) for k in ("center", "mode")},
        "modality_gap": modality_gap(embs)["mean"], "modality_gap_pairs": modality_gap(embs),
        "modality_gap_centered": (modality_gap(apply_centers(embs, run.centers))["mean"]
                                  if run.centers else None),
    }
    others = list(versus or [])
    init = (run.info.get("init") or {}).get("run")
    if init:
        init = str(run.path / init)  # relative: inside the run (an absolute path stays)
    if (compare_init and init and Path(init).is_dir()
            and all(Path(o).resolve() != Path(init) for o in others)):
        others.insert(0, init)
    if others and pairs:
        metrics["versus"] = side_by_side(run, metrics, [
            (o, evaluate(o, split=split, write=False, compare_init=False)) for o in others])
    if write:
        stem = "metrics" if split == "test" else f"metrics-{split}"
        write_json_atomic(run.path / f"{stem}.json", metrics)
        with atomic_file(run.path / f"{stem}.md", "w") as fh:
            fh.write(metrics_markdown(metrics))
    return metrics


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A readable summary: 3x3 table, zero-shot, mixed-search modes, modality gap."""
    cm, search = metrics["cross_modal"], metrics["search"]
    lines = [f"# Evaluation on the `{metrics['split']}` split", "",
             f"Items: {', '.join(f'{m} {n}' for m, n in metrics['n_items'].items())}; "
             f"preset `{metrics.get('preset')}`, made by `{metrics.get('made_by', 'train')}`.",
             ""]
    pairs = pairs_table(metrics)
    lines += [f"## Query -> target (relevance {metrics.get('relevance_note', 'class level')})",
              "", pairs.markdown(), "", mean_line(cm), ""]
    if metrics.get("instance"):
        inst = metrics["instance"]
        lines += [f"## Query -> target ({metrics['instance_note']})", "",
                  pairs_table(metrics, level="instance").markdown(), "",
                  mean_line(inst["cross_modal"]), ""]
    if metrics.get("warnings"):
        lines += ["Warning: " + "; ".join(metrics["warnings"]) + ".", ""]
    lines += ["## Zero-shot classification", "",
              zero_shot_table(metrics).markdown() if metrics["zero_shot"]
              else f"({metrics['zero_shot_note']})", "",
              "## Mixed search (one pool of every modality), top 10", ""]
    if metrics["mixed"]:
        lines += [shares_table(metrics).markdown(), ""]
    lines += [f"Per-target-modality search, cross-modal R@10: {fmt(metrics['per_target_R@10'])}."
              f" Recommended mode: `{search.get('mode')}` (centre: {search.get('center')}).", "",
              f"Modality gap (mean centroid distance): {fmt(metrics['modality_gap'])} raw, "
              f"{fmt(metrics['modality_gap_centered'])} centred.", ""]
    if metrics.get("not_measured"):
        lines += ["Not measured: " + "; ".join(metrics["not_measured"]) + ".", ""]
    if metrics.get("versus"):
        lines += versus_markdown(metrics["versus"])
    return "\n".join(lines)


def mean_line(cm: dict[str, Any]) -> str:
    """``Cross-modal mean: R@1 .., R@10 .., mAP@10 .., MRR .. (over N measured pairs).``"""
    n = len(cm.get("pairs_measured", [])) if "pairs_measured" in cm else None
    over = f" (over {n} measured pair{'s' if n != 1 else ''})" if n is not None else ""
    return (f"Cross-modal mean: R@1 {fmt(cm['R@1'])}, R@10 {fmt(cm['R@10'])}, "
            f"mAP@10 {fmt(cm['mAP@10'])}, MRR {fmt(cm.get('MRR'))}{over}.")


def metrics_path(run_path: str | os.PathLike, split: str = "test") -> Path:
    """Where ``evaluate`` writes a split's metrics: ``RUN/metrics.json`` for the test split."""
    return Path(run_path) / ("metrics.json" if split == "test" else f"metrics-{split}.json")
