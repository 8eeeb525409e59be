"""Mixed-modality search: merge per-target-modality top-k lists into one ranked list.

A mixed search (one pool holding text, images and audio) ranked by raw cosine favours whichever
modality sits closest to everything (the reference returned 15 of 15 text at k=15). Modes:

- ``none``: plain top-k over the union pool by raw score (what a single flat index returns).
- ``centered``: same merge as ``none``; the caller embeds with ``Run.project(..., center=True)``
  (per-modality training mean removed, C3 / "Mind the Gap"), so only the merge is shared here.
- ``calibrated``: rank by per-target-modality standardised score ``(s - mean_m) / std_m`` with
  ``calibration[m] = (mean, std)`` of query->m scores on training data
  (``run.info["calibration"]``).
- ``balanced``: fill the k slots from each modality's own ranking in proportion to its pool share
  (equal shares when ``pool_sizes`` is not given); within each round the higher score goes first.

``merge_topk`` returns raw scores in the mode's rank order (so for ``calibrated`` and ``balanced``
the returned scores need not be descending).
"""

from __future__ import annotations

import numpy as np

from unibind.errors import UsageError, unknown

MODES = ("none", "balanced", "calibrated", "centered")


def _stack(per_modality: dict[str, tuple[np.ndarray, np.ndarray]]):
    mods = list(per_modality)
    scores, rows, mod_idx = [], [], []
    n_q = None
    for i, m in enumerate(mods):
        s, r = per_modality[m]
        s, r = np.asarray(s, dtype=np.float64), np.asarray(r, dtype=np.int64)
        if s.ndim != 2 or s.shape != r.shape:
            raise UsageError(f"{m}: scores and rows must be 2-D of one shape, got "
                             f"{s.shape} and {r.shape}")
        if n_q is not None and s.shape[0] != n_q:
            raise UsageError(f"{m}: {s.shape[0]} queries, others have {n_q}")
        n_q = s.shape[0]
        scores.append(s)
        rows.append(r)
        mod_idx.append(np.full(s.shape, i))
    valid = [(r >= 0) & np.isfinite(s) for s, r in zip(scores, rows)]
    return mods, scores, rows, mod_idx, valid


def _result(mods, take_s, take_m, take_r):
    names = np.array(mods, dtype=object)[take_m.clip(min=0)]
    names[take_m < 0] = ""
    return take_s.astype(np.float32), names.astype(str), take_r


def merge_topk(per_modality: dict[str, tuple[np.ndarray, np.ndarray]], k: int, mode: str,
               calibration: dict[str, tuple[float, float]] | None = None,
               pool_sizes: dict[str, int] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge ``{modality: (scores [q, k_m] descending, rows [q, k_m])}`` into the top ``k``.

    Returns ``(scores [q, k], modalities [q, k] str, rows [q, k])``; slots beyond the available
    results hold score ``-inf``, modality ``""`` and row ``-1``. Rows < 0 or non-finite scores in
    the inputs mark absent results (as faiss returns them)."""
    if mode not in MODES:
        raise unknown("mixed-search mode", mode, MODES)
    if not per_modality:
        raise UsageError("merge_topk needs at least one modality")
    mods, scores, rows, mod_idx, valid = _stack(per_modality)
    if mode == "balanced":
        return _balanced(mods, scores, rows, valid, k, pool_sizes)
    keys = []
    for m, s, v in zip(mods, scores, valid):
        if mode == "calibrated":
            if not calibration or m not in calibration:
                raise UsageError(f"calibrated mode needs calibration stats for {m!r}")
            mean, std = calibration[m]
            s = (s - float(mean)) / max(float(std), 1e-12)
        keys.append(np.where(v, s, -np.inf))
    key = np.concatenate(keys, axis=1)
    all_s = np.concatenate([np.where(v, s, -np.inf) for s, v in zip(scores, valid)], axis=1)
    all_r = np.concatenate([np.where(v, r, -1) for r, v in zip(rows, valid)], axis=1)
    all_m = np.concatenate([np.where(v, i, -1) for i, v in zip(mod_idx, valid)], axis=1)
    order = np.argsort(-key, axis=1, kind="stable")[:, :k]
    take = [np.take_along_axis(a, order, axis=1) for a in (all_s, all_m, all_r)]
    out_s, out_m, out_r = _pad(take, k)
    return _result(mods, out_s, out_m, out_r)


def _pad(arrays: list[np.ndarray], k: int) -> list[np.ndarray]:
    s, m, r = arrays
    if s.shape[1] < k:
        extra = k - s.shape[1]
        s = np.pad(s, ((0, 0), (0, extra)), constant_values=-np.inf)
        m = np.pad(m, ((0, 0), (0, extra)), constant_values=-1)
        r = np.pad(r, ((0, 0), (0, extra)), constant_values=-1)
    return [s, m, r]


def _balanced(mods, scores, rows, valid, k, pool_sizes):
    """Quota-by-pool-share interleave, vectorised over queries, one slot per step."""
    n_q, n_m = scores[0].shape[0], len(mods)
    weights = np.array([pool_sizes.get(m, 0) if pool_sizes else 1 for m in mods], dtype=np.int64)
    total = max(int(weights.sum()), 1)
    n_valid = np.stack([v.sum(axis=1) for v in valid], axis=1)  # [q, M] (lists are prefixes)
    taken = np.zeros((n_q, n_m), dtype=np.int64)
    out_s = np.full((n_q, k), -np.inf)
    out_m = np.full((n_q, k), -1, dtype=np.int64)
    out_r = np.full((n_q, k), -1, dtype=np.int64)
    q_idx = np.arange(n_q)
    for step in range(k):
        avail = taken < n_valid
        if not avail.any():
            break
        deficit = weights[None, :] * (step + 1) - taken * total  # integer: exact ties
        deficit = np.where(avail, deficit, np.iinfo(np.int64).min)
        best = deficit.max(axis=1, keepdims=True)
        nxt = np.full((n_q, n_m), -np.inf)
        for j in range(n_m):
            pos = np.minimum(taken[:, j], scores[j].shape[1] - 1)
            nxt[:, j] = scores[j][q_idx, pos] if scores[j].shape[1] else -np.inf
        cand = np.where(avail & (deficit == best), nxt, -np.inf)
        choice = np.argmax(cand, axis=1)  # most under-served modality; best next score first
        has = avail.any(axis=1)
        sel = q_idx[has]
        j = choice[has]
        pos = taken[sel, j]
        out_m[sel, step] = j
        for jj in range(n_m):
            pick = j == jj
            out_s[sel[pick], step] = scores[jj][sel[pick], pos[pick]]
            out_r[sel[pick], step] = rows[jj][sel[pick], pos[pick]]
        taken[sel, j] += 1
    return _result(mods, out_s, out_m, out_r)
