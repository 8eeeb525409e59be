"""Which recipe is `default`? Validation metrics of recipe variants on synthetic features.

1. Variants of the recipe (mean +- sd over 3 training seeds) on two synthetic sets ("standard":
   the test-suite set; "hard": more classes, more noise): validation cross-modal mAP@10 and R@1
   (the selection criterion: the test split is not looked at here), epochs run, seconds.
2. `seed` vs `default` on the held-out test split, per cross-modal pair.
3. Mixed search (one pool of every modality) per mode on the test split, plus the reference's
   own measurement: text queries, raw scores ("none"), share of text in the top 15 / top 100.

    .venv/bin/python benchmarks/presets.py [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import numpy as np

from unibind.eval.calibration import apply_centers, compare_modes, modality_centers, score_stats
from unibind.eval.metrics import cross_modal_mean, mixed_metrics, pair_metrics, share_deviation
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.run.embed import embed_items
from unibind.training.config import PRESETS, override, preset
from unibind.training.fit import fit
from unibind.util.tables import Table

DEFAULT = preset("default")
VARIANTS = {
    "seed (reference)": PRESETS["seed"],
    "seed + class positives": override(PRESETS["seed"], positives="class"),
    "default": DEFAULT,
    "default, instance positives": override(DEFAULT, positives="instance"),
    "default + 0.1 MSE to mean": override(DEFAULT, mse_weight=0.1),
    "default, pair weights 0.3": override(DEFAULT, pair_weights={
        "text-image": 0.3, "text-audio": 0.3, "image-audio": 0.3}),
    "default, Linear heads": override(DEFAULT, hidden=0, dropout=0.0),
    "default, MLP 1024": override(DEFAULT, hidden=1024),
    "default, no dropout": override(DEFAULT, dropout=0.0),
    "default, lr 5e-4": override(DEFAULT, lr=5e-4),
    "default, lr 5e-3": override(DEFAULT, lr=5e-3),
    "default, batch 256": override(DEFAULT, batch_size=256),
    "default, D 128": override(DEFAULT, embed_dim=128),
    "default, D 512": override(DEFAULT, embed_dim=512),
    "default, fixed T 0.07": override(DEFAULT, learn_scale=False),
    "default, constant lr": override(DEFAULT, schedule="constant"),
}
DATASETS = {
    "standard": SyntheticSpec(),
    "hard": SyntheticSpec(n_classes=20, groups_per_class=40, group_noise=0.8,
                          noise={"text": 0.6, "image": 1.2, "audio": 1.5}, seed=1),
}


def val_scores(feats, cfg, seed):
    t0 = time.perf_counter()
    res = fit(feats, cfg, seed=seed)
    val = embed_items(res.heads, feats, res.split == "val")
    pairs = pair_metrics(val.vectors, val.labels)
    return (cross_modal_mean(pairs), cross_modal_mean(pairs, "R@1"), len(res.curve),
            time.perf_counter() - t0)


def table(headers, rows):
    print(Table("", headers, rows).markdown() + "\n")


def variants_table(seeds, names):
    for dname, spec in DATASETS.items():
        feats = generate(spec)
        rows = []
        for name in names:
            got = np.array([val_scores(feats, VARIANTS[name], s) for s in range(seeds)])
            m, sd = got.mean(axis=0), got.std(axis=0)
            rows.append([name, f"{m[0]:.3f} +- {sd[0]:.3f}", f"{m[1]:.3f} +- {sd[1]:.3f}",
                         f"{m[2]:.0f}", f"{m[3]:.1f}"])
        print(f"### Validation, `{dname}` synthetic set ({spec.n_classes} classes, "
              f"{spec.groups_per_class} triplets each), {seeds} seeds\n")
        table(["recipe", "val cross-modal mAP@10", "val cross-modal R@1", "epochs", "s"], rows)


def test_tables(dname):
    feats = generate(DATASETS[dname])
    runs = {name: fit(feats, preset(name), seed=0) for name in ("seed", "default")}
    pairs = {}
    for name, res in runs.items():
        test = embed_items(res.heads, feats, res.split == "test")
        e, lab = test.vectors, test.labels
        pairs[name] = (pair_metrics(e, lab), e, lab, res)
    cross = [p for p in pairs["seed"][0] if p.split("->")[0] != p.split("->")[1]]
    print(f"### Held-out test split, `{dname}` set: seed vs default (mAP@10 / R@1)\n")
    rows = [[p] + [f"{pairs[n][0][p]['mAP@10']:.3f} / {pairs[n][0][p]['R@1']:.3f}"
                   for n in ("seed", "default")] for p in cross]
    table(["pair", "seed", "default"], rows)
    print(f"### Mixed search on the test split, `{dname}` set (pool: every modality)\n")
    rows = []
    for name, (pm, e, lab, res) in pairs.items():
        train_e = embed_items(res.heads, feats, res.split == "train").vectors
        centers = modality_centers(train_e)
        _, cal_pairs = score_stats(train_e)
        per_target = cross_modal_mean(pm, "R@10")
        for mode, r in compare_modes(e, lab, centers, cal_pairs).items():
            text_q = r["share@10_by_query"]["text"]
            rows.append([name, mode] + [f"{text_q[m]:.2f}" for m in ("text", "image", "audio")]
                        + [f"{share_deviation(r):.3f}", f"{r['R@10']:.3f}",
                           f"{per_target:.3f}"])
    table(["preset", "mode", "text q: text", "text q: image", "text q: audio",
           "max share dev", "mixed R@10", "per-target R@10"], rows)
    print("### The reference's measurement (text queries, one raw pool, test split)\n")
    rows = []
    for name, (_pm, e, lab, res) in pairs.items():
        train_e = embed_items(res.heads, feats, res.split == "train").vectors
        for mode, space in (("none", e), ("centered", apply_centers(e, modality_centers(train_e)))):
            cells = []
            for k in (15, 100):
                r = mixed_metrics(space, lab, "none", k=k)
                sh = r[f"share@{k}_by_query"]["text"]
                cells.append(" / ".join(f"{round(sh[m] * k):d}" for m in ("text", "image",
                                                                         "audio")))
            rows.append([name, mode] + cells)
    table(["preset", "space", "top 15: text / image / audio", "top 100: text / image / audio"],
          rows)
    print(f"(pool: {', '.join(f'{m} {len(v)}' for m, v in pairs['default'][1].items())}; "
          "the reference: 15/0/0 at k=15, 68/20/12 at k=100)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer variants")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = list(VARIANTS) if not args.quick else ["seed (reference)", "default",
                                                   "default, instance positives"]
    print("default =", {k: v for k, v in dataclasses.asdict(DEFAULT).items()
                        if k in ("hidden", "dropout", "positives", "pair_weights", "mse_weight",
                                 "batch_size", "lr",
                                 "epochs", "schedule", "temperature", "patience", "embed_dim")})
    print()
    variants_table(args.seeds, names)
    for dname in DATASETS:
        test_tables(dname)


if __name__ == "__main__":
    main()
