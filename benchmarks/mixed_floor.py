"""Balanced mixed search before/after ranking by calibrated score and the noise floor.

Every held-out (test split) item of a trained run queries one pool of every test item (itself
excluded), k=10; the merge is the one ``Space`` uses:

- ``interleave``: the quota interleave the balanced mode returned before (slots by pool share,
  round by round);
- ``ranked(raw)``: the same items ranked by raw score;
- ``ranked``: the same items ranked by calibrated score (``run.json`` ``calibration_pairs``);
- ``ranked+floor``: and targets whose best score is at the noise floor get no slots (the best
  of ``FLOOR_FACTOR * n`` unrelated items; ``(10n)``: of 10 n).

Two spaces: the run as trained, and the same run with the audio vectors replaced by random unit
vectors (an audio encoder outside the shared space: what a run whose sounds have no text side
returns), its calibration measured on the training split the way ``train`` does.

Columns: raw-score inversions per query (pairs of results of different modalities where the
upper one has the lower raw score), queries with a noise-level result ranked above a real match
(a relevant cross-modal item; noise level: below the score the best of the
target's n unrelated items reaches by chance, the 1 - 1/n quantile of ``noise_pairs``),
each modality's share of the slots, cross-modal R@10 (a relevant
item among the 10) and mAP@10 of the mixed list, and the share of (query, target) lists withheld.

    python benchmarks/mixed_floor.py [RUN]   # default: the demo's run (`unibind demo` first)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from unibind.eval.calibration import noise_quantiles, score_stats
from unibind.eval.metrics import topk_per_target
from unibind.run.folder import Run
from unibind.search.merge import FLOOR_FACTOR, apply_floor, merge_topk, noise_floors
from unibind.util.runtime import cache_root

K = 10


def _ap(rel: np.ndarray, n_rel: int) -> float:
    if n_rel == 0:
        return 0.0
    hits = np.cumsum(rel)
    return float((rel * hits / np.arange(1, len(rel) + 1)).sum() / min(n_rel, len(rel)))


def measure(embs, labels, calib, noise, variant: str) -> dict:
    mods = list(embs)
    pool = {m: len(embs[m]) for m in mods}
    counts = {m: 0 for m in mods}
    inv = noise_above = n_q = withheld = lists = 0
    recalls, aps = [], []
    for q in mods:
        per = {t: topk_per_target(embs[q], embs[t], K, exclude_self=(t == q)) for t in mods}
        cal = calib[q]
        floors = noise_floors(noise[q], pool, factor=10.0 if variant.endswith("(10n)") else
                              FLOOR_FACTOR)
        chance = noise_floors(noise[q], pool, factor=1.0)  # the best unrelated item's level
        if variant.startswith("ranked+floor"):
            per, low = apply_floor(per, floors)
            withheld += sum(int(v.sum()) for v in low.values())
        lists += len(mods) * len(embs[q])
        scores, names, rows = merge_topk(per, K, "balanced",
                                         None if variant == "ranked(raw)" else cal, pool,
                                         rank_chosen=variant != "interleave")
        for i in range(len(embs[q])):
            n_q += 1
            ok = rows[i] >= 0
            s, nm, r = scores[i][ok], names[i][ok], rows[i][ok]
            for m in nm:
                counts[m] += 1
            inv += sum(1 for a in range(len(s)) for b in range(a + 1, len(s))
                       if nm[a] != nm[b] and s[a] < s[b])
            rel = np.array([t != q and labels[t][j] == labels[q][i] for t, j in zip(nm, r)])
            low = np.array([s[j] < chance.get(t, -np.inf) and not rel[j]
                              for j, t in enumerate(nm)])
            if rel.any() and low[:np.argmax(rel)].any():
                noise_above += 1
            n_rel = sum(int((labels[t] == labels[q][i]).sum()) for t in mods if t != q)
            if n_rel:
                recalls.append(float(rel.any()))
                aps.append(_ap(rel.astype(float), n_rel))
    slots = max(sum(counts.values()), 1)
    return {"inversions/query": inv / n_q, "noise above match": noise_above / n_q,
            **{f"share {m}": counts[m] / slots for m in mods},
            "R@10": float(np.mean(recalls)), "mAP@10": float(np.mean(aps)),
            "withheld": withheld / max(lists, 1)}


def main(run_path: Path) -> None:
    run = Run.load(run_path)
    test = run.embed(split="test")
    embs, labels = test.vectors, test.labels
    calib = run.info["calibration_pairs"]
    pool = {m: len(v) for m, v in embs.items()}
    print(f"run {run_path}: test items {pool}, k={K}")
    rng = np.random.default_rng(0)
    train = run.embed(split="train")
    rand = {m: (v if m != "audio" else _random(rng, v.shape)) for m, v in train.vectors.items()}
    _, calib_rand = score_stats(rand)
    scenes = {"trained": (embs, calib, run.info["noise_pairs"]),
              "audio outside the space": ({m: v if m != "audio" else _random(rng, v.shape)
                                           for m, v in embs.items()}, calib_rand,
                                          noise_quantiles(rand, train.labels))}
    for name, (e, c, noise) in scenes.items():
        rows = {v: measure(e, labels, c, noise, v)
                for v in ("interleave", "ranked(raw)", "ranked", "ranked+floor",
                          "ranked+floor(10n)")}
        cols = list(next(iter(rows.values())))
        print(f"\n{name}")
        print(f"{'variant':<17}" + "".join(f"{c_:>18}" for c_ in cols))
        for v, r in rows.items():
            print(f"{v:<17}" + "".join(f"{r[c_]:>18.3f}" for c_ in cols))


def _random(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else cache_root() / "demo" / "run")
