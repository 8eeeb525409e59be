"""Per-modality statistics stored with a run for mixed searches, and the mode it recommends.

- ``modality_centers``: mean unit embedding per modality on training data (``Run.embed(...,
  center=True)`` subtracts it: C3 / "Mind the Gap").
- ``score_stats``: mean/std of query->target scores per target modality on training data
  (``run.info["calibration"]``, used by ``merge_topk(mode="calibrated")``).
- ``noise_quantiles``: upper quantiles of unrelated pairs' scores per query->target pair
  (``run.info["noise_pairs"]``, the noise floor of mixed searches).
- ``compare_modes`` / ``recommend``: measure every mixed-search mode on validation data and pick
  the one with the best cross-modal R@10 among those meeting the balance constraint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unibind.eval.metrics import cross_modal_mean, mixed_metrics, pair_metrics, share_deviation
from unibind.features.folder import Features
from unibind.run.embed import center, embed_items
from unibind.run.heads import Heads
from unibind.search.merge import MODES

MAX_SHARE_DEV = 0.10  # share@10 within 10 points of pool share
MAX_R10_DROP = 0.02  # mixed cross-modal R@10 at most 2 points below per-target search
PREFERENCE = ("none", "centered", "calibrated", "balanced")


def modality_centers(embs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The mean vector of each modality's embeddings."""
    return {m: e.mean(axis=0).astype(np.float32) for m, e in embs.items() if len(e)}


def apply_centers(embs: dict[str, np.ndarray], centers: dict[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Subtract each modality's centre and re-normalise (as ``Run.embed(center=True)``)."""
    return {m: center(e, centers[m]) for m, e in embs.items()}


def _sample(n: int, max_n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=max_n, replace=False)) if n > max_n else np.arange(n)


def score_stats(embs: dict[str, np.ndarray], max_n: int = 2000, seed: int = 0
                ) -> tuple[dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """``[mean, std]`` of query->target scores (self pairs excluded) on a sample of each modality.

    Returns ``(by_target, by_pair)``: ``by_target[t]`` pools queries of every modality (the
    ``calibration`` of run.json); ``by_pair[q][t]`` is per query modality (``calibration_pairs``),
    which also removes a query's preference for its own modality."""
    rng = np.random.default_rng(seed)
    picks = {m: _sample(len(e), max_n, rng) for m, e in embs.items()}
    by_target: dict[str, list[float]] = {}
    by_pair: dict[str, dict[str, list[float]]] = {q: {} for q in embs}
    for t, et in embs.items():
        vals = []
        for q, eq in embs.items():
            s = eq[picks[q]] @ et[picks[t]].T
            if q == t:
                s = s[~np.eye(len(picks[t]), dtype=bool)]
            s = s.ravel() if s.size else np.zeros(1)
            by_pair[q][t] = [float(s.mean()), float(max(s.std(), 1e-6))]
            vals.append(s)
        allv = np.concatenate(vals)
        by_target[t] = [float(allv.mean()), float(max(allv.std(), 1e-6))]
    return by_target, by_pair


NOISE_MIN_PAIRS = 20  # fewer unrelated pairs than this: every other pair counts as unrelated


def relation_keys(items: Any) -> np.ndarray:
    """What makes two items related, per item: its label; in a collection without labels its
    group (files sharing a stem), else its id (only an item with itself)."""
    labels = items["label"].astype(str).str.strip()
    if (labels != "").any():
        return labels.to_numpy()
    if "group" in items and (items["group"].astype(str) != "").any():
        groups = items["group"].astype(str)
        return np.where(groups != "", groups, items["id"].astype(str)).astype(str)
    return items["id"].astype(str).to_numpy()


def noise_quantiles(embs: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                    max_n: int = 2000, seed: int = 0) -> dict[str, dict[str, list[list[float]]]]:
    """Upper quantiles of unrelated pairs' scores (different ``labels``: see
    ``relation_keys``) per query->target pair: ``{q: {t: [x, score]}}`` with
    ``x = -log10(1 - p)`` from 0.5 to the largest the sample supports (its maximum);
    ``merge.noise_floors`` reads the floor for a pool of n items there. With too few pairs of
    different keys every pair but an item with itself counts."""
    rng = np.random.default_rng(seed)
    picks = {m: _sample(len(e), max_n, rng) for m, e in embs.items()}
    out: dict[str, dict[str, list[list[float]]]] = {q: {} for q in embs}
    for q, eq in embs.items():
        for t, et in embs.items():
            s = eq[picks[q]] @ et[picks[t]].T
            lq, lt = labels[q][picks[q]], labels[t][picks[t]]
            other = lq[:, None] != lt[None, :]
            if other.sum() < NOISE_MIN_PAIRS:
                other = np.ones_like(other)
                if q == t:
                    np.fill_diagonal(other, False)
            v = np.sort(s[other].ravel())
            if not len(v):
                continue
            top = float(np.log10(len(v)))
            xs = [float(x) for x in np.arange(0.5, top, 0.5)] + [top]
            scores = [float(v[min(len(v) - 1, int(len(v) * (1 - 10 ** -x)))]) for x in xs]
            out[q][t] = [xs, scores]
    return out


def compare_modes(embs: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                  centers: dict[str, np.ndarray], calibration: dict[str, dict[str, list[float]]],
                  k: int = 10, modes: tuple[str, ...] = MODES) -> dict[str, dict]:
    """``{mode: mixed_metrics}``; ``centered`` searches the centred embeddings; ``calibrated``
    uses ``calibration[query_modality]`` (``{target: [mean, std]}``, the per-pair stats)."""
    centred = apply_centers(embs, centers) if "centered" in modes else None
    out = {}
    for mode in modes:
        space = centred if mode == "centered" else embs
        out[mode] = mixed_metrics(space, labels, mode, k=k, calibration=calibration)
    return out


def per_target_r(embs: dict[str, np.ndarray], labels: dict[str, np.ndarray], k: int = 10
                 ) -> float:
    """Cross-modal mean R@k when each target modality is searched on its own."""
    return cross_modal_mean(pair_metrics(embs, labels, ks=(k,)), f"R@{k}")


def recommend(modes: dict[str, dict], per_target: float, k: int = 10) -> dict:
    """The search mode a run recommends among modes meeting both constraints (share within
    ``MAX_SHARE_DEV`` of pool share per query modality, R@k within ``MAX_R10_DROP`` of
    per-target search); ``balanced`` if none does."""
    table = {m: {"share_dev": share_deviation(r, k), f"R@{k}": r[f"R@{k}"],
                 "drop": per_target - r[f"R@{k}"]} for m, r in modes.items()}
    ok = [m for m in PREFERENCE if m in table and table[m]["share_dev"] <= MAX_SHARE_DEV
          and table[m]["drop"] <= MAX_R10_DROP]
    # R@k to 2 decimals (validation sets are small), then the smaller share deviation
    best = max(ok, key=lambda m: (round(table[m][f"R@{k}"], 2), -table[m]["share_dev"],
                                  -PREFERENCE.index(m))) if ok else "balanced"
    return {"center": best == "centered", "mode": best, "per_target_R@10": per_target,
            "validation": table,
            "rule": f"best R@{k} (2 decimals), then smallest share deviation, among modes with "
                    f"share within {MAX_SHARE_DEV:.2f} of pool share and R@{k} within "
                    f"{MAX_R10_DROP:.2f} of per-target search; else balanced"}


def space_stats(heads: Heads, features: Features, split: np.ndarray) -> dict[str, Any]:
    """Centres + calibration (training data) and the recommended mixed mode (validation)."""
    train = embed_items(heads, features, split == "train", 20000, seed=0)
    train_e = train.vectors
    centers = modality_centers(train_e)
    calib, calib_pairs = score_stats(train_e)
    calib_c, calib_pairs_c = score_stats(apply_centers(train_e, centers))
    keys = {m: relation_keys(train.table(m)) for m in train_e}
    noise = noise_quantiles(train_e, keys)
    noise_c = noise_quantiles(apply_centers(train_e, centers), keys)
    search: dict[str, Any] = {"center": False, "mode": "balanced", "rule": "no validation data"}
    if (split == "val").any():
        val = embed_items(heads, features, split == "val", 2000, seed=0)
        if len(val.vectors) > 1:
            search = recommend(compare_modes(val.vectors, val.labels, centers, calib_pairs),
                               per_target_r(val.vectors, val.labels))
    return {"centers": centers, "calibration": calib, "calibration_pairs": calib_pairs,
            "calibration_centered": calib_c, "calibration_pairs_centered": calib_pairs_c,
            "noise_pairs": noise, "noise_pairs_centered": noise_c, "search": search}
