"""Metrics against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest

from unibind.eval.metrics import (
    mixed_metrics,
    modality_gap,
    pair_metrics,
    retrieval_metrics,
    share_deviation,
    topk_per_target,
    zero_shot_accuracy,
)
from unibind.search.merge import merge_topk


def _unit(rng, n, d=8):
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(q, ql, g, gl, same_set, ks=(1, 5, 10), map_k=10):
    hits = {k: [] for k in ks}
    aps, rrs = [], []
    for i in range(len(q)):
        cand = [j for j in range(len(g)) if not (same_set and j == i)]
        scores = [float(q[i] @ g[j]) for j in cand]
        order = [cand[j] for j in sorted(range(len(cand)), key=lambda j: (-scores[j], j))]
        rel = [gl[j] == ql[i] for j in order]
        if not any(rel):
            continue
        for k in ks:
            hits[k].append(float(any(rel[:k])))
        n_rel, found, ap = sum(rel), 0, 0.0
        for rank, r in enumerate(rel[:map_k], start=1):
            if r:
                found += 1
                ap += found / rank
        aps.append(ap / min(n_rel, map_k))
        rrs.append(1.0 / (rel.index(True) + 1))
    out = {f"R@{k}": float(np.mean(v)) for k, v in hits.items()}
    out[f"mAP@{map_k}"] = float(np.mean(aps))
    out["MRR"] = float(np.mean(rrs))
    out["queries"] = len(aps)
    return out


@pytest.mark.parametrize("same_set", [False, True])
def test_retrieval_metrics_match_brute_force(same_set):
    rng = np.random.default_rng(0)
    q = _unit(rng, 37)
    g = q if same_set else _unit(rng, 53)
    ql = rng.integers(0, 5, len(q))
    gl = ql if same_set else rng.integers(0, 5, len(g))
    gl = np.where(np.arange(len(gl)) == 0, 99, gl)  # one class with a single item
    if same_set:
        ql = gl
    fast = retrieval_metrics(q, ql, g, gl, same_set=same_set, chunk=7)
    ref = brute(q, ql, g, gl, same_set)
    assert fast["queries"] == ref["queries"]
    for key in ("R@1", "R@5", "R@10", "mAP@10", "MRR"):
        assert fast[key] == pytest.approx(ref[key], abs=1e-12), key


def test_pair_metrics_cover_3x3():
    rng = np.random.default_rng(1)
    embs = {m: _unit(rng, 20) for m in ("text", "image", "audio")}
    labels = {m: rng.integers(0, 3, 20) for m in embs}
    pairs = pair_metrics(embs, labels)
    assert len(pairs) == 9 and "text->audio" in pairs and "audio->audio" in pairs
    ref = brute(embs["audio"], labels["audio"], embs["audio"], labels["audio"], True)
    assert pairs["audio->audio"]["mAP@10"] == pytest.approx(ref["mAP@10"])


def test_zero_shot_and_gap_match_loops():
    rng = np.random.default_rng(2)
    e, c = _unit(rng, 30), _unit(rng, 4)
    names = ["a", "b", "c", "d"]
    labels = np.array(names)[rng.integers(0, 4, 30)]
    ref = np.mean([names[int(np.argmax([e[i] @ c[j] for j in range(4)]))] == labels[i]
                   for i in range(30)])
    assert zero_shot_accuracy(e, labels, c, names) == pytest.approx(ref)
    embs = {"text": _unit(rng, 10), "image": _unit(rng, 12)}
    gap = modality_gap(embs)
    want = np.sqrt(sum((embs["text"].mean(0) - embs["image"].mean(0)) ** 2))
    assert gap["text-image"] == pytest.approx(want, rel=1e-5) and gap["mean"] == gap["text-image"]


def test_topk_per_target_matches_sort():
    rng = np.random.default_rng(3)
    q, g = _unit(rng, 9), _unit(rng, 25)
    s, r = topk_per_target(q, g, 6)
    full = q @ g.T
    for i in range(9):
        want = np.argsort(-full[i], kind="stable")[:6]
        assert list(r[i]) == list(want)
        assert np.allclose(s[i], full[i, want])
    s, r = topk_per_target(q, q, 4, exclude_self=True)
    assert all(i not in r[i] for i in range(9))


def test_mixed_none_is_a_flat_pool_search():
    rng = np.random.default_rng(4)
    embs = {"text": _unit(rng, 15), "image": _unit(rng, 10), "audio": _unit(rng, 5)}
    labels = {m: rng.integers(0, 3, len(e)) for m, e in embs.items()}
    out = mixed_metrics(embs, labels, "none", k=10, chunk=4)
    mods = list(embs)
    pool = np.concatenate([embs[m] for m in mods])
    pool_mod = np.concatenate([[m] * len(embs[m]) for m in mods])
    pool_lab = np.concatenate([labels[m] for m in mods])
    counts = {m: 0 for m in mods}
    hits = {}
    offset = 0
    for q in mods:
        for i in range(len(embs[q])):
            s = pool @ embs[q][i]
            s[offset + i] = -np.inf
            top = np.argsort(-s, kind="stable")[:10]
            for j in top:
                counts[pool_mod[j]] += 1
            for t in mods:
                if t != q and labels[q][i] in labels[t]:  # queries with a relevant t item
                    hit = any(pool_mod[j] == t and pool_lab[j] == labels[q][i] for j in top)
                    hits.setdefault(f"{q}->{t}", []).append(hit)
        offset += len(embs[q])
    total = sum(counts.values())
    for m in mods:
        assert out["share@10"][m] == pytest.approx(counts[m] / total)
    assert out["pool_share"]["text"] == pytest.approx(0.5)
    for pair, v in hits.items():
        assert out["R@10_pairs"][pair] == pytest.approx(np.mean(v))
    assert share_deviation(out) >= 0


def test_merge_used_by_mixed_is_the_contract_function():
    rng = np.random.default_rng(5)
    s = -np.sort(-rng.random((2, 3)), axis=1)
    per = {"text": (s, np.array([[0, 1, 2], [2, 1, 0]]))}
    sc, mods, rows = merge_topk(per, 3, "none")
    assert (mods == "text").all() and np.allclose(sc, s)


@pytest.mark.parametrize("mode", ["none", "balanced"])
def test_mixed_and_per_target_share_one_denominator(mode: str):
    """Label 3 has no image and no audio item: its text queries have nothing relevant there.
    With k above the pool every relevant item is returned, so mixed R@k must equal per-target
    R@k (1.0) on every pair; dividing by every query instead would give 4/6."""
    rng = np.random.default_rng(7)
    embs = {"text": _unit(rng, 6), "image": _unit(rng, 3), "audio": _unit(rng, 2)}
    labels = {"text": np.array([0, 1, 2, 0, 3, 3]), "image": np.array([0, 1, 2]),
              "audio": np.array([0, 1])}
    mixed = mixed_metrics(embs, labels, mode, k=10)
    per = pair_metrics(embs, labels, ks=(10,))
    for pair, r in mixed["R@10_pairs"].items():
        assert r == pytest.approx(per[pair]["R@10"]) == pytest.approx(1.0), pair
        assert mixed["R@10_queries"][pair] == per[pair]["queries"], pair
    assert mixed["R@10_queries"]["text->image"] == 4


def test_median_rank_matches_brute_force_and_unmeasured_pairs_are_none():
    rng = np.random.default_rng(3)
    q, g = _unit(rng, 29), _unit(rng, 41)
    ql, gl = rng.integers(0, 4, len(q)), rng.integers(0, 4, len(g))
    ranks = []
    for i in range(len(q)):
        order = sorted(range(len(g)), key=lambda j: (-float(q[i] @ g[j]), j))
        rel = [gl[j] == ql[i] for j in order]
        if any(rel):
            ranks.append(rel.index(True) + 1)
    got = retrieval_metrics(q, ql, g, gl)
    assert got["medR"] == pytest.approx(float(np.median(ranks)))
    none = retrieval_metrics(q, np.full(len(q), 7), g, gl)  # no query has a relevant item
    assert none["queries"] == 0 and none["R@1"] is None and none["medR"] is None


def test_cross_modal_mean_leaves_unmeasured_pairs_out():
    from unibind.eval.metrics import cross_modal_mean

    pairs = {"text->image": {"R@1": 0.5, "queries": 4}, "image->text": {"R@1": 0.75},
             "text->audio": {"R@1": None, "queries": 0}, "text->text": {"R@1": 1.0}}
    assert cross_modal_mean(pairs, "R@1") == pytest.approx(0.625)  # not (0.5 + 0.75 + 0) / 3
    assert cross_modal_mean(pairs, "R@1", only=["text->image"]) == pytest.approx(0.5)
    assert cross_modal_mean({"a->b": {"R@1": None}}, "R@1") is None
