"""Does pair expansion (``search --via-pairs``) help on held-out data? Direct vs expanded ranking.

On RUN's test split, for every cross-modal pair q->t: rank the test items of modality t for each
test query of modality q, (a) directly by cosine and (b) with pair expansion: the query's N
nearest OTHER test items of its own modality (never itself nor its own group, so a query never
reaches its own pair) lend their standardised score to their group's t items; each item keeps its
best standardised score. Class-level relevance, as in `unibind evaluate`. Prints a table.

    python benchmarks/pairs.py ~/.cache/unibind/demo/run [--anchors 5]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from unibind.eval.evaluate import load_run_features, split_mask
from unibind.eval.metrics import retrieval_metrics
from unibind.run.folder import Run


def expanded_scores(eq: np.ndarray, et: np.ndarray, gq: np.ndarray, gt: np.ndarray,
                    cal_qq: tuple[float, float], cal_qt: tuple[float, float],
                    anchors: int) -> np.ndarray:
    """``[n_q, n_t]`` standardised scores with pair expansion (unibind.search.pair_expansion)."""
    z = (eq @ et.T - cal_qt[0]) / cal_qt[1]
    zq = (eq @ eq.T - cal_qq[0]) / cal_qq[1]
    same_group = (gq[:, None] == gq[None, :]) & (gq[:, None] != "")
    zq[same_group] = -np.inf  # never the query itself nor its own group
    for i in range(len(eq)):
        for a in np.argsort(-zq[i], kind="stable")[:anchors]:
            if np.isfinite(zq[i, a]) and gq[a]:
                members = gt == gq[a]
                z[i, members] = np.maximum(z[i, members], zq[i, a])
    return z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--anchors", type=int, nargs="+", default=[1, 5, 10])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run = Run.load(args.run)
    feats = load_run_features(run, None)
    items = feats.items[split_mask(run, feats, "test")]
    embs, labels, groups = {}, {}, {}
    for m in run.modalities:
        sub = items[items["modality"] == m]
        embs[m] = run.project(m, feats.arrays[m][sub["row"].to_numpy()])
        labels[m] = sub["label"].astype(str).to_numpy()
        groups[m] = sub["group"].astype(str).to_numpy()
    cal = run.info["calibration_pairs"]
    print(f"\n{args.run} test split; cells: R@1 / R@10 / mAP@10 (class-level)\n")
    print("| pair | direct | " + " | ".join(f"via {n} anchors" for n in args.anchors) + " |")
    print("|---|---|" + "---|" * len(args.anchors))
    for q in embs:
        for t in embs:
            if q == t:
                continue
            cells = [retrieval_metrics(embs[q], labels[q], embs[t], labels[t])]
            for n in args.anchors:
                s = expanded_scores(embs[q], embs[t], groups[q], groups[t], cal[q][q], cal[q][t], n)
                cells.append(retrieval_metrics(s, labels[q], np.eye(len(embs[t])), labels[t]))
            print(f"| {q}->{t} | " + " | ".join(
                f"{c['R@1']:.3f} / {c['R@10']:.3f} / {c['mAP@10']:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
