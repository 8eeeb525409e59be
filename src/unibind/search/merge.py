"""Mixed-modality search: merge per-target-modality top-k lists into one ranked list.

A mixed search (one pool holding text, images and audio) ranked by raw cosine favours whichever
modality sits closest to everything (the reference returned 15 of 15 text at k=15). Modes:

- ``none``: plain top-k over the union pool by raw score (what a single flat index returns).
- ``centered``: same merge as ``none``; the caller embeds with ``Run.project(..., center=True)``
  (per-modality training mean removed, C3 / "Mind the Gap"), so only the merge is shared here.
- ``calibrated``: rank by per-target-modality standardised score ``(s - mean_m) / std_m`` with
  ``calibration[m] = (mean, std)`` of query->m scores on training data
  (``run.info["calibration"]``).
- ``balanced``: choose the k items from each modality's own ranking in proportion to its pool
  share (equal shares when ``pool_sizes`` is not given), then rank the chosen items by score:
  by calibrated score ``(s - mean_m) / std_m`` when ``calibration`` is given (scores of unrelated
  pairs differ per modality pair, so raw cosines are not comparable across modalities), else by
  raw score. A lower-scored item never sits above a higher-scored one of another modality except
  by calibrated score.

``merge_topk`` returns raw scores in the mode's rank order (so for ``calibrated`` and calibrated
``balanced`` the returned scores need not be descending).

The noise floor (``noise_floors`` / ``apply_floor``): the run records upper quantiles of the
scores of unrelated pairs per query->target modality (``run.json`` ``noise_pairs``, training
data). Among n unrelated items the best scores about the ``1 - 1/n`` quantile; a target whose
best score stays below the ``1 - 1/(FLOOR_FACTOR * n)`` quantile (what the best of
``FLOOR_FACTOR * n`` unrelated items reaches) carries no signal for the query and gets no slots.
A floor is placed only where the run measured ten times as many unrelated pairs.
"""

from __future__ import annotations

import numpy as np

from unibind.errors import UsageError, unknown

MODES = ("none", "balanced", "calibrated", "centered")
FLOOR_FACTOR = 3  # floor: the best of 3 n unrelated items (benchmarks/mixed_floor.py)
FLOOR_SUPPORT = 1.0  # the measured pairs must be 10x more than 3 n, else no floor


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
               pool_sizes: dict[str, int] | None = None, rank_chosen: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge ``{modality: (scores [q, k_m] descending, rows [q, k_m])}`` into the top ``k``.

    Returns ``(scores [q, k], modalities [q, k] str, rows [q, k])``; slots beyond the available
    results hold score ``-inf``, modality ``""`` and row ``-1``. Rows < 0 or non-finite scores in
    the inputs mark absent results (as faiss returns them). ``rank_chosen=False`` leaves a
    balanced merge in its quota interleave order (the order before ranking; for comparisons)."""
    if mode not in MODES:
        raise unknown("mixed-search mode", mode, MODES)
    if not per_modality:
        raise UsageError("merge_topk needs at least one modality")
    mods, scores, rows, mod_idx, valid = _stack(per_modality)
    if mode == "balanced":
        keys = _keys(mods, scores, valid, calibration, required=False)
        return _balanced(mods, scores, keys if rank_chosen else None, rows, valid, k, pool_sizes)
    keys = (_keys(mods, scores, valid, calibration, required=True) if mode == "calibrated"
            else [np.where(v, s, -np.inf) for s, v in zip(scores, valid)])
    key = np.concatenate(keys, axis=1)
    all_s = np.concatenate([np.where(v, s, -np.inf) for s, v in zip(scores, valid)], axis=1)
    all_r = np.concatenate([np.where(v, r, -1) for r, v in zip(rows, valid)], axis=1)
    all_m = np.concatenate([np.where(v, i, -1) for i, v in zip(mod_idx, valid)], axis=1)
    order = np.argsort(-key, axis=1, kind="stable")[:, :k]
    take = [np.take_along_axis(a, order, axis=1) for a in (all_s, all_m, all_r)]
    out_s, out_m, out_r = _pad(take, k)
    return _result(mods, out_s, out_m, out_r)


def _keys(mods, scores, valid, calibration, required: bool) -> list[np.ndarray]:
    """Ranking keys: calibrated scores when every modality has stats, else raw scores (an error
    when ``required``)."""
    missing = [m for m in mods if not calibration or m not in calibration]
    if missing and required:
        raise UsageError(f"calibrated mode needs calibration stats for {missing[0]!r}")
    out = []
    for m, s, v in zip(mods, scores, valid):
        if not missing:
            mean, std = calibration[m]
            s = (s - float(mean)) / max(float(std), 1e-12)
        out.append(np.where(v, s, -np.inf))
    return out


def noise_floors(noise: dict[str, list[list[float]]] | None, pool_sizes: dict[str, int],
                 factor: float = FLOOR_FACTOR) -> dict[str, float]:
    """``{target: score}``: the score the best of ``factor * n`` unrelated items reaches, from
    ``noise[target] = [x, score]`` quantiles (``x = -log10(1 - p)``, as
    ``eval.calibration.noise_quantiles`` records them); targets without them, or whose
    quantiles rest on fewer than ``10 ** FLOOR_SUPPORT * factor * n`` pairs, get none."""
    out = {}
    for m, n in pool_sizes.items():
        if noise and m in noise and len(noise[m][0]):
            xs, scores = noise[m]
            x = np.log10(max(factor * n, 1.0))
            if x <= xs[-1] - FLOOR_SUPPORT:  # else too few measured pairs to place it
                out[m] = float(np.interp(x, xs, scores))
    return out


def apply_floor(per_modality: dict[str, tuple[np.ndarray, np.ndarray]],
                floors: dict[str, float]
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """Drop, per query, every target modality whose best score is below its floor.

    Returns the lists with those queries' rows set to -1 and ``{modality: bool [q]}`` marking
    the withheld queries. A query keeps at least one modality: when every one falls below
    its floor, none is withheld (a single-kind answer is still ranked by score)."""
    best = {m: np.where(np.asarray(r) >= 0, np.asarray(s, dtype=np.float64), -np.inf).max(
        axis=1, initial=-np.inf) for m, (s, r) in per_modality.items()}
    low = {m: best[m] < floors[m] if m in floors else np.zeros(len(best[m]), bool)
           for m in per_modality}
    all_low = np.all(np.stack(list(low.values())), axis=0)
    out, withheld = {}, {}
    for m, (s, r) in per_modality.items():
        drop = low[m] & ~all_low
        withheld[m] = drop
        out[m] = (s, np.where(drop[:, None], -1, r))
    return out, withheld


def _pad(arrays: list[np.ndarray], k: int) -> list[np.ndarray]:
    s, m, r = arrays
    if s.shape[1] < k:
        extra = k - s.shape[1]
        s = np.pad(s, ((0, 0), (0, extra)), constant_values=-np.inf)
        m = np.pad(m, ((0, 0), (0, extra)), constant_values=-1)
        r = np.pad(r, ((0, 0), (0, extra)), constant_values=-1)
    return [s, m, r]


def _balanced(mods, scores, keys, rows, valid, k, pool_sizes):
    """Quota by pool share (vectorised over queries, one slot per step), then the chosen items
    ranked by ``keys`` (stable: each modality keeps its own order)."""
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
    if keys is None:
        return _result(mods, out_s, out_m, out_r)
    out_k = np.full((n_q, k), -np.inf)
    for jj in range(n_m):
        mine = out_m == jj  # rank the chosen items by their keys:
        # the i-th chosen item of modality jj is its list's i-th entry
        taken_at = np.cumsum(mine, axis=1) - 1
        pos = np.where(mine, taken_at, 0)
        out_k = np.where(mine, np.take_along_axis(keys[jj], np.minimum(
            pos, keys[jj].shape[1] - 1), axis=1) if keys[jj].shape[1] else -np.inf, out_k)
    order = np.argsort(-out_k, axis=1, kind="stable")
    out_s, out_m, out_r = (np.take_along_axis(a, order, axis=1) for a in (out_s, out_m, out_r))
    return _result(mods, out_s, out_m, out_r)
