"""Retrieval metrics in numpy (each checked against a brute-force loop in the tests).

Relevance is class level: a gallery item is relevant to a query when their labels are equal.
For same-modality retrieval the query itself is excluded from its gallery. Queries without any
relevant gallery item are left out of the averages (``queries`` counts the ones used): ONE
definition (``has_relevant``) for per-target metrics and for mixed-search R@k alike, so that
``drop = per-target R@10 - mixed R@10`` compares the same queries.

- Recall@k (hit rate): 1 if a relevant item is in the top k.
- mAP@10: ``AP@10 = sum_{i<=10} P@i * rel_i / min(n_relevant, 10)``.
- MRR: ``1 / rank`` of the first relevant item in the full ranking.
- medR: median over queries of the rank of the first relevant item (1 = first place).
A pair with no usable query is *not measured*: its metrics are ``None`` (``queries`` 0), and
``cross_modal_mean`` leaves it out.
Ranking is by descending score, ties broken by gallery order (stable sort).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unibind.search.merge import merge_topk

KS = (1, 5, 10)
MAP_K = 10


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def has_relevant(q_labels: np.ndarray, g_labels: np.ndarray) -> np.ndarray:
    """Per query: whether the gallery holds an item of its label (cross-modal: no self)."""
    return np.isin(np.asarray(q_labels), np.asarray(g_labels))


def retrieval_metrics(queries: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray,
                      g_labels: np.ndarray, same_set: bool = False, ks: tuple[int, ...] = KS,
                      map_k: int = MAP_K, chunk: int = 512) -> dict[str, Any]:
    """Recall@k, mAP@map_k and MRR of cosine/inner-product retrieval ``queries -> gallery``.

    ``same_set=True``: query i is gallery item i and is excluded from its own ranking."""
    q_labels, g_labels = np.asarray(q_labels), np.asarray(g_labels)
    hits = {k: 0.0 for k in ks}
    ap_sum, rr_sum, used = 0.0, 0.0, 0
    ranks: list[np.ndarray] = []
    for sl in _chunks(len(queries), chunk):
        s = queries[sl] @ gallery.T
        rel = q_labels[sl, None] == g_labels[None, :]
        if same_set:
            idx = np.arange(sl.start, sl.stop)
            s[idx - sl.start, idx] = -np.inf
            rel[idx - sl.start, idx] = False
        order = np.argsort(-s, axis=1, kind="stable")
        rel_sorted = np.take_along_axis(rel, order, axis=1)
        n_rel = rel_sorted.sum(axis=1)
        keep = n_rel > 0
        rel_sorted, n_rel = rel_sorted[keep], n_rel[keep]
        used += int(keep.sum())
        for k in ks:
            hits[k] += float(rel_sorted[:, :k].any(axis=1).sum())
        top = rel_sorted[:, :map_k].astype(np.float64)
        prec = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
        ap_sum += float(((prec * top).sum(axis=1) / np.minimum(n_rel, map_k)).sum())
        first = np.argmax(rel_sorted, axis=1) + 1
        ranks.append(first)
        rr_sum += float((1.0 / first).sum())
    if not used:
        return {**{f"R@{k}": None for k in ks}, f"mAP@{map_k}": None, "MRR": None,
                "medR": None, "queries": 0}
    out: dict[str, Any] = {f"R@{k}": hits[k] / used for k in ks}
    out[f"mAP@{map_k}"] = ap_sum / used
    out["MRR"] = rr_sum / used
    out["medR"] = float(np.median(np.concatenate(ranks)))
    out["queries"] = used
    return out


def pair_metrics(embs: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 ks: tuple[int, ...] = KS) -> dict[str, dict[str, float]]:
    """Every query modality -> target modality (``"text->audio"``), same-modality included."""
    return {f"{q}->{t}": retrieval_metrics(embs[q], labels[q], embs[t], labels[t],
                                           same_set=(q == t), ks=ks)
            for q in embs for t in embs}


def is_cross_modal(pair: str) -> bool:
    """Whether a ``"query->target"`` pair joins two different modalities."""
    q, t = pair.split("->")
    return q != t


def measured(pairs: dict[str, dict[str, Any]], key: str = f"mAP@{MAP_K}") -> list[str]:
    """The cross-modal pairs whose ``key`` was measured (at least one query)."""
    return [p for p, v in pairs.items() if is_cross_modal(p) and v.get(key) is not None]


def cross_modal_mean(pairs: dict[str, dict[str, Any]], key: str = f"mAP@{MAP_K}",
                     only: list[str] | None = None) -> float | None:
    """Mean of ``key`` over the measured cross-modal pairs (``only``: these pairs); ``None``
    when no pair was measured."""
    names = [p for p in measured(pairs, key) if only is None or p in only]
    return float(np.mean([pairs[p][key] for p in names])) if names else None


def zero_shot_accuracy(embs: np.ndarray, labels: np.ndarray, class_embs: np.ndarray,
                       class_names: list[str]) -> float:
    """Share of items whose nearest class prompt (inner product) is their own label."""
    if len(embs) == 0:
        return 0.0
    pred = np.asarray(class_names)[np.argmax(embs @ class_embs.T, axis=1)]
    return float(np.mean(pred == np.asarray(labels)))


def modality_gap(embs: dict[str, np.ndarray]) -> dict[str, float]:
    """Euclidean distance between modality centroids (Liang et al. 2022), per pair and mean."""
    mods = list(embs)
    cent = {m: embs[m].mean(axis=0) for m in mods}
    out = {f"{a}-{b}": float(np.linalg.norm(cent[a] - cent[b]))
           for i, a in enumerate(mods) for b in mods[i + 1:]}
    out["mean"] = float(np.mean(list(out.values()))) if out else 0.0
    return out


def topk_per_target(query: np.ndarray, gallery: np.ndarray, k: int,
                    exclude_self: bool = False, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted top-k ``(scores, rows)`` of inner-product search (what a flat index returns).

    ``exclude_self``: query i (global index ``offset + i``) is gallery row ``offset + i``."""
    s = query @ gallery.T
    if exclude_self:
        idx = np.arange(len(query))
        s[idx, offset + idx] = -np.inf
    k = min(k, gallery.shape[0])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else \
        np.tile(np.arange(s.shape[1]), (len(s), 1))
    part_s = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -part_s), axis=1)
    rows = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(s, rows, axis=1), rows


def mixed_metrics(embs: dict[str, np.ndarray], labels: dict[str, np.ndarray], mode: str,
                  k: int = 10, calibration: dict[str, dict[str, list[float]]] | None = None,
                  chunk: int = 1024) -> dict:
    """One pool of every modality; each item queries it (itself excluded), merged per ``mode``.

    ``calibration[q]`` (``{target: [mean, std]}``) calibrates the queries of modality ``q``.

    ``share@k``: share of each modality among all returned slots; ``pool_share``: its share of
    the pool; ``R@k``: mean over cross-modal pairs q->t of the rate at which the merged top-k
    holds a relevant t item, averaged over the queries that have one (``has_relevant``, as in
    per-target search, ``pairs[q->t]["R@k"]``; ``R@k_queries`` counts them)."""
    mods = list(embs)
    pool = {m: len(embs[m]) for m in mods}
    counts = {m: 0 for m in mods}
    by_query: dict[str, dict[str, float]] = {}
    hits: dict[str, float] = {}
    used: dict[str, int] = {}
    slots = 0
    for q in mods:
        q_counts = {m: 0 for m in mods}
        q_hits = {t: 0 for t in mods if t != q}
        q_used = {t: int(has_relevant(labels[q], labels[t]).sum()) for t in q_hits}
        for sl in _chunks(pool[q], chunk):
            per = {t: topk_per_target(embs[q][sl], embs[t], k, exclude_self=(t == q),
                                      offset=sl.start) for t in mods}
            cal = (calibration or {}).get(q)
            _, names, rows = merge_topk(per, k, mode, cal, pool_sizes=pool)
            lab_q = labels[q][sl]
            for t in mods:
                is_t = names == t
                q_counts[t] += int(is_t.sum())
                if t != q:
                    rel = is_t & (labels[t][np.where(is_t, rows, 0)] == lab_q[:, None])
                    q_hits[t] += int(rel.any(axis=1).sum())
        n_slots = sum(q_counts.values())
        slots += n_slots
        for m in mods:
            counts[m] += q_counts[m]
        by_query[q] = {m: q_counts[m] / max(n_slots, 1) for m in mods}
        for t, h in q_hits.items():
            hits[f"{q}->{t}"] = h / q_used[t] if q_used[t] else None
            used[f"{q}->{t}"] = q_used[t]
    n_pool = sum(pool.values())
    return {f"share@{k}": {m: counts[m] / max(slots, 1) for m in mods},
            "pool_share": {m: pool[m] / max(n_pool, 1) for m in mods},
            f"share@{k}_by_query": by_query,
            f"R@{k}": (float(np.mean([h for h in hits.values() if h is not None]))
                       if any(h is not None for h in hits.values()) else 0.0),
            f"R@{k}_pairs": hits, f"R@{k}_queries": used}


def share_deviation(mixed: dict, k: int = 10) -> float:
    """Largest |share@k - pool_share| over query modalities and result modalities.

    Taken per query modality, because averaging over queries of every modality would hide a
    space where each query only returns its own modality."""
    pool = mixed["pool_share"]
    return float(max(abs(share[m] - pool[m])
                     for share in mixed[f"share@{k}_by_query"].values() for m in pool))
