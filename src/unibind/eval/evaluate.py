"""run -> metrics.json + metrics.md, on held-out data the heads never saw.

The split is recomputed from the run's stored split parameters (and checked against its digest),
every item of the split is projected with the run's heads, and:

- ``pairs``: every query modality -> target modality (3x3) Recall@1/5/10, mAP@10, MRR;
- ``zero_shot``: per modality, accuracy of the nearest class prompt (the label's text embedded
  with the run's text encoder, or the synthetic generator's class vectors);
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

from unibind.errors import unknown
from unibind.eval.calibration import apply_centers, compare_modes, recommend
from unibind.eval.compare import side_by_side, versus_markdown
from unibind.eval.metrics import cross_modal_mean, modality_gap, pair_metrics, zero_shot_accuracy
from unibind.features.splits import SPLITS, SplitError, assign_splits, group_keys
from unibind.features.store import Features, load_features
from unibind.run.folder import Run, RunError
from unibind.search.merge import MODES
from unibind.train.synthetic import label_vectors, spec_from_meta
from unibind.util.atomic import atomic_file
from unibind.util.jsonio import write_json_atomic

log = logging.getLogger(__name__)


def load_run_features(run: Run, features: Features | str | os.PathLike | None = None
                      ) -> Features:
    if isinstance(features, Features):
        return features.with_views(run.views)
    path = features or run.features_path
    if path is None:
        raise RunError(f"run {run.path} records no features folder; pass features explicitly")
    return load_features(path).with_views(run.views)


def split_mask(run: Run, feats: Features, split: str, *, allow_split_mismatch: bool = False
               ) -> np.ndarray:
    """Items of ``split`` ("train", "val", "test" or "all") under the run's split recipe.

    Features that no longer give the run's split (possible train/test leak) raise
    ``SplitError``, from disk or in memory alike, unless ``allow_split_mismatch=True``."""
    if split == "all":
        return np.ones(len(feats.items), dtype=bool)
    if split not in SPLITS:
        raise unknown("split", split, [*SPLITS, "all"])
    info = run.info.get("split") or {}
    if not info:
        raise RunError(f"run {run.path} stores no split information")
    assigned, again = assign_splits(feats.items, info["val"], info["test"], info["seed"])
    if again["digest"] != info["digest"]:
        msg = (f"features give a different split than run {run.path} was trained with "
               "(items changed); held-out items may have been trained on")
        if not allow_split_mismatch:
            raise SplitError(msg + "; pass allow_split_mismatch=True (--allow-split-mismatch) "
                             "to evaluate anyway")
        log.warning(msg)
    return (assigned == split).to_numpy()


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


def project_items(run: Run, feats: Features, mask: np.ndarray, relevance: str = "label"
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Unit embeddings per modality and the key that decides relevance (label or group)."""
    items = feats.items[mask]
    keys = items["label"] if relevance == "label" else group_keys(items)
    embs, labels = {}, {}
    for m in run.modalities:
        sub = items["modality"] == m
        if sub.any() and m in feats.arrays:
            embs[m] = run.project(m, feats.arrays[m][items.loc[sub, "row"].to_numpy()])
            labels[m] = keys[sub].astype(str).to_numpy()
    return embs, labels


def prompt_text(label: str) -> str:
    return label.replace("_", " ").replace("-", " ").strip()


def class_prompts(run: Run, feats: Features, names: list[str]) -> tuple[list[str], np.ndarray]:
    """Class prompt vectors in the shared space (text head applied); raises when unavailable."""
    spec = spec_from_meta(feats.meta) or spec_from_meta({"synthetic": run.info.get("synthetic")})
    if spec is not None:
        names, vecs = label_vectors(spec)
    else:
        enc_info = run.encoders.get("text")
        if not enc_info or "spec" not in enc_info:
            raise RunError("the run records no text encoder spec")
        from unibind.encoders import load_encoder  # imported lazily: loading a model is heavy

        vecs = load_encoder(enc_info["spec"]).encode([prompt_text(n) for n in names])
    return names, run.project("text", vecs)


def zero_shot(run: Run, feats: Features, embs: dict[str, np.ndarray],
              labels: dict[str, np.ndarray]) -> tuple[dict[str, float], str]:
    if "text" not in run.modalities:
        return {}, "skipped: the run has no text head"
    names = sorted(set(feats.items["label"].astype(str)))
    try:
        names, prompts = class_prompts(run, feats, names)
    except Exception as exc:  # a missing/unloadable encoder must not sink the evaluation
        log.warning("zero-shot skipped: cannot embed class prompts (%s)", exc)
        return {}, f"skipped: {exc}"
    return ({m: zero_shot_accuracy(e, labels[m], prompts, names) for m, e in embs.items()},
            "nearest class prompt (label text through the text encoder and head)")


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
    feats = load_run_features(run, features)
    mask = split_mask(run, feats, split, allow_split_mismatch=allow_split_mismatch)
    relevance = relevance_of(feats.items)
    embs, labels = project_items(run, feats, mask, relevance)
    if not embs:
        raise RunError(f"no {split} items with a modality the run has heads for")
    if relevance == "none":
        labels = {m: np.array([f"item{i}" for i in range(len(e))]) for m, e in embs.items()}
    pairs = pair_metrics(embs, labels) if relevance != "none" else {}
    zs, zs_note = (zero_shot(run, feats, embs, labels) if relevance == "label"
                   else ({}, "skipped: needs labels"))
    calib = run.info.get("calibration_pairs") or {
        q: run.info.get("calibration", {}) for q in embs}
    mixed = (compare_modes(embs, labels, run.centers, calib, modes=modes)
             if len(embs) > 1 and relevance != "none" else {})
    per_target = float(np.mean([v["R@10"] for p, v in pairs.items()
                                if p.split("->")[0] != p.split("->")[1]] or [0.0]))
    check = recommend(mixed, per_target)["validation"] if mixed else {}
    metrics = {
        "split": split, "run": str(run.path), "head_digest": run.head_digest,
        "data_digest": run.info.get("data_digest"), "preset": run.info.get("preset"),
        "made_by": run.info.get("made_by", "train"), "relevance": relevance,
        "relevance_note": RELEVANCE[relevance],
        "not_measured": NOT_MEASURED.get(relevance, []) + headless(run, feats),
        "n_items": {m: int(len(e)) for m, e in embs.items()},
        "pairs": pairs,
        "cross_modal": {k: cross_modal_mean(pairs, k) for k in ("R@1", "R@5", "R@10",
                                                               "mAP@10", "MRR")},
        "zero_shot": zs, "zero_shot_note": zs_note,
        "mixed": mixed, "mixed_check": check, "per_target_R@10": per_target,
        "search": {k: run.info.get("search", {}).get(k) for k in ("center", "mode")},
        "modality_gap": modality_gap(embs)["mean"], "modality_gap_pairs": modality_gap(embs),
        "modality_gap_centered": (modality_gap(apply_centers(embs, run.centers))["mean"]
                                  if run.centers else None),
    }
    others = list(versus or [])
    init = (run.info.get("init") or {}).get("run")
    if (compare_init and init and Path(init).is_dir()
            and all(Path(o).resolve() != Path(init) for o in others)):
        others.insert(0, init)
    if others and pairs:
        metrics["versus"] = side_by_side(run, metrics, others, split)
    if write:
        stem = "metrics" if split == "test" else f"metrics-{split}"
        write_json_atomic(run.path / f"{stem}.json", metrics)
        with atomic_file(run.path / f"{stem}.md", "w") as fh:
            fh.write(metrics_markdown(metrics))
    return metrics


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A readable summary: 3x3 table, zero-shot, mixed-search modes, modality gap."""
    mods = list(metrics["n_items"])
    lines = [f"# Evaluation on the `{metrics['split']}` split",
             "", f"Items: {', '.join(f'{m} {n}' for m, n in metrics['n_items'].items())}; "
             f"preset `{metrics.get('preset')}`, made by `{metrics.get('made_by', 'train')}`.",
             "", f"## Query -> target (relevance {metrics.get('relevance_note', 'class level')})",
             "",
             "| query -> target | R@1 | R@5 | R@10 | mAP@10 | MRR |", "|---|---|---|---|---|---|"]
    for pair, v in metrics["pairs"].items():
        lines.append(f"| {pair} | {_f(v['R@1'])} | {_f(v['R@5'])} | {_f(v['R@10'])} | "
                     f"{_f(v['mAP@10'])} | {_f(v['MRR'])} |")
    cm = metrics["cross_modal"]
    lines += ["", f"Cross-modal mean: R@1 {_f(cm['R@1'])}, R@10 {_f(cm['R@10'])}, "
              f"mAP@10 {_f(cm['mAP@10'])}.", "", "## Zero-shot classification", ""]
    if metrics["zero_shot"]:
        lines += ["| modality | accuracy |", "|---|---|"]
        lines += [f"| {m} | {_f(a)} |" for m, a in metrics["zero_shot"].items()]
    else:
        lines.append(f"({metrics['zero_shot_note']})")
    lines += ["", "## Mixed search (one pool of every modality), top 10", "",
              "| mode | " + " | ".join(f"share {m}" for m in mods)
              + " | max dev (per query modality) | cross-modal R@10 |",
              "|---|" + "---|" * (len(mods) + 2)]
    for mode, r in metrics["mixed"].items():
        dev = metrics["mixed_check"][mode]["share_dev"]
        lines.append(f"| {mode} | " + " | ".join(_f(r["share@10"][m]) for m in mods)
                     + f" | {_f(dev)} | {_f(r['R@10'])} |")
    if metrics["mixed"]:
        pool = next(iter(metrics["mixed"].values()))["pool_share"]
        lines.append("| (pool) | " + " | ".join(_f(pool[m]) for m in mods) + " | | |")
    lines += ["", f"Per-target-modality search, cross-modal R@10: {_f(metrics['per_target_R@10'])}."
              f" Recommended mode: `{metrics['search'].get('mode')}` "
              f"(centre: {metrics['search'].get('center')}).", "",
              f"Modality gap (mean centroid distance): {_f(metrics['modality_gap'])} raw, "
              f"{_f(metrics['modality_gap_centered'])} centred.", ""]
    if metrics.get("not_measured"):
        lines += ["Not measured: " + "; ".join(metrics["not_measured"]) + ".", ""]
    if metrics.get("versus"):
        lines += versus_markdown(metrics["versus"])
    return "\n".join(lines)


def metrics_path(run_path: str | os.PathLike, split: str = "test") -> Path:
    return Path(run_path) / ("metrics.json" if split == "test" else f"metrics-{split}.json")
