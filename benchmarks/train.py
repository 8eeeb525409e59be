"""Training speed: seconds per epoch on 100k synthetic triplets (CPU), heads only.

Dims are the seed profile's (BERT 768, CLIP ViT-L/14 768, CLAP 512). The validation pass of each
epoch is timed separately. The ``seed`` preset (batch 8: 12.5k steps per epoch) is timed on a
slice of the epoch and extrapolated (said so in the table).

    .venv/bin/python benchmarks/train.py [--triplets 100000] [--epochs 2] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from unibind.features.synthetic import SyntheticSpec, generate
from unibind.training.config import override, preset
from unibind.training.fit import fit, torch_threads
from unibind.util.tables import Table


def features(triplets: int):
    classes = 100
    spec = SyntheticSpec(n_classes=classes, groups_per_class=triplets // classes,
                         dims={"text": 768, "image": 768, "audio": 512}, latent=32)
    return generate(spec)


def time_preset(feats, name: str, epochs: int, threads: int, steps_cap: int | None) -> dict:
    cfg = override(preset(name), epochs=epochs, patience=0, val_fraction=0.05,
                   test_fraction=0.05, val_queries=1000)
    n_train = int((feats.items["modality"] == "text").sum() * 0.9)
    steps = n_train // cfg.batch_size
    scale = 1.0
    if steps_cap and steps > steps_cap:  # time a slice of the epoch, extrapolate
        scale = steps / steps_cap
        sub = feats.items[feats.items["group"].isin(
            sorted(feats.items["group"].unique())[: int(steps_cap * cfg.batch_size / 0.9)])]
        feats = type(feats)(items=sub.reset_index(drop=True), arrays=feats.arrays,
                            meta=feats.meta)
    t0 = time.perf_counter()
    res = fit(feats, cfg, seed=0, threads=threads)
    total = time.perf_counter() - t0
    train_s = float(np.mean([c["seconds"] for c in res.curve]))
    val_s = float(np.mean([c.get("val_seconds", 0.0) for c in res.curve]))
    setup_s = total - sum(c["seconds"] + c.get("val_seconds", 0.0) for c in res.curve)
    return {"preset": name, "threads": threads, "batch": cfg.batch_size,
            "steps/epoch": steps, "s/epoch (train)": train_s * scale,
            "s/epoch (val)": val_s, "setup s": setup_s,
            "triplets/s": n_train / (train_s * scale),
            "note": f"extrapolated x{scale:.1f}" if scale > 1 else "measured"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--triplets", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed-steps", type=int, default=1500, help="steps timed for `seed`")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    feats = features(args.triplets)
    print(f"{args.triplets} triplets (dims 768/768/512) generated in "
          f"{time.perf_counter() - t0:.1f}s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads available\n")
    rows = []
    for threads in args.threads:
        with torch_threads(threads):
            rows.append(time_preset(feats, "default", args.epochs, threads, None))
    rows.append(time_preset(feats, "seed", 1, args.threads[0], args.seed_steps))
    print(Table("", list(rows[0]), [list(r.values()) for r in rows], digits=2).markdown())


if __name__ == "__main__":
    main()
