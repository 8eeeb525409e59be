"""Bound (zero-shot) vs trained on one held-out split, side by side.

    python benchmarks/bind.py ~/.cache/unibind/demo/features     # Tux Paint demo, offline profile

Runs, all on the same test split (the default split recipe): ``random`` = the bound run's text
vectors against random unit image vectors (mean of 5 seeds: chance level), ``bound`` = ``unibind
bind``, ``default`` = ``unibind train`` (preset default), ``init`` = ``unibind train --init``
from the bound run. Prints mAP@10 / R@10 per cross-modal pair and checks the issue's targets.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from unibind.binding.bind import bind
from unibind.eval.evaluate import evaluate, load_run_features, project_items, split_mask
from unibind.eval.metrics import pair_metrics
from unibind.run.folder import Run
from unibind.training.trainer import train


def random_images(run_path: Path, seeds: int = 5) -> dict[str, dict[str, float]]:
    """text<->image with the bound run's text vectors and random unit image vectors."""
    run = Run.load(run_path)
    feats = load_run_features(run)
    embs, labels = project_items(run, feats, split_mask(run, feats, "test"))
    out: dict[str, dict[str, float]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal(embs["image"].shape).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        pairs = pair_metrics({"text": embs["text"], "image": noise},
                             {"text": labels["text"], "image": labels["image"]})
        for p in ("text->image", "image->text"):
            for k in ("mAP@10", "R@10"):
                out.setdefault(p, {}).setdefault(k, 0.0)
                out[p][k] += pairs[p][k] / seeds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="unibind-bench-bind-") as tmp:
        runs, seconds = {}, {}
        t0 = time.perf_counter()
        bind(args.features, Path(tmp) / "bound")
        seconds["bound"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        train(args.features, Path(tmp) / "default", seed=args.seed)
        seconds["default"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        kept = train(args.features, Path(tmp) / "init", seed=args.seed,
                     init=Path(tmp) / "bound")["kept"]
        seconds["init"] = time.perf_counter() - t0
        for name in ("bound", "default", "init"):
            runs[name] = evaluate(Path(tmp) / name, write=False, compare_init=False)["pairs"]
        runs = {"random": random_images(Path(tmp) / "bound"), **runs}
    names = list(runs)
    pairs = [p for p in runs["default"] if p.split("->")[0] != p.split("->")[1]]
    print("mAP@10 / R@10 on the held-out test split")
    print(f"{'pair':<14}" + "".join(f"{n:>17}" for n in names))
    for p in pairs:
        cells = [f"{runs[n][p]['mAP@10']:.3f} / {runs[n][p]['R@10']:.3f}" if p in runs[n]
                 else "-" for n in names]
        print(f"{p:<14}" + "".join(f"{c:>17}" for c in cells))
    mean = {n: float(np.mean([runs[n][p]["mAP@10"] for p in pairs if p in runs[n]]))
            for n in names}
    print(f"{'mean mAP@10':<14}" + "".join(f"{mean[n]:>17.3f}" for n in names)
          + "   (random, bound: over the pairs they cover)")
    print("seconds: " + ", ".join(f"{n} {s:.1f}" for n, s in seconds.items())
          + f"; --init kept: {kept}")
    ti = "text->image"
    ratio = runs["bound"][ti]["mAP@10"] / max(runs["random"][ti]["mAP@10"], 1e-9)
    print(f"target 1: bound text->image mAP@10 {runs['bound'][ti]['mAP@10']:.3f} = "
          f"{ratio:.1f}x random ({runs['random'][ti]['mAP@10']:.3f}): "
          f"{'met' if ratio >= 2 else 'NOT met'}")
    below = [p for p in runs["bound"] if p in pairs
             and runs["init"][p]["mAP@10"] < runs["bound"][p]["mAP@10"]]
    ok = mean["init"] >= mean["default"] - 1e-9 and not below
    print(f"target 2: --init mean {mean['init']:.3f} vs default {mean['default']:.3f}; pairs "
          f"below bound: {below or 'none'}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
