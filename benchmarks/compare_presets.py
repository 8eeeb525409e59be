"""`seed` vs `default` on a real features folder (e.g. the demo's): held-out metrics side by side.

Trains both presets on FEATURES (same split, same seed), evaluates each on the test split and prints
Markdown tables: per cross-modal pair mAP@10 / R@10, then mixed-search modality shares per mode.

    python benchmarks/compare_presets.py ~/.cache/unibind/demo/features
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from unibind.eval.evaluate import evaluate
from unibind.modalities import MODALITIES
from unibind.training.trainer import train

PRESETS = ("seed", "default")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    metrics = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            run = Path(tmp) / name
            train(args.features, run, preset_name=name, seed=args.seed)
            metrics[name] = evaluate(run, split="test")
    pairs = [p for p in metrics["default"]["pairs"] if p.split("->")[0] != p.split("->")[1]]
    print(f"\nheld-out test split of {args.features}\n")
    print("| pair | seed mAP@10 | default mAP@10 | seed R@10 | default R@10 |")
    print("|---|---:|---:|---:|---:|")
    for p in pairs + ["cross-modal mean"]:
        s, d = (metrics[n]["pairs"].get(p) or metrics[n]["cross_modal"] for n in PRESETS)
        cells = [s["mAP@10"], d["mAP@10"], s["R@10"], d["R@10"]]
        print(f"| {p} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print("\n| preset | mode | share@10 text / image / audio | pool share | mixed R@10 |")
    print("|---|---|---|---|---:|")
    for name in PRESETS:
        for mode, m in metrics[name]["mixed"].items():
            share, pool = (" / ".join(f"{m[key].get(x, 0):.2f}" for x in MODALITIES)
                           for key in ("share@10", "pool_share"))
            print(f"| {name} | {mode} | {share} | {pool} | {m['R@10']:.3f} |")
    print(f"\nper-target-modality R@10 (default): {metrics['default']['per_target_R@10']:.3f}; "
          f"recommended mode: {metrics['default']['search']}")


if __name__ == "__main__":
    main()
