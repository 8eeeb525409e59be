"""The demo's extraction stage per runtime (torch, ONNX Runtime fp32, int8), and what int8 costs
in retrieval: each variant's features -> the same training (seed 0) -> held-out test metrics,
class-level (relevant = same label) and instance-level (relevant = same group), side by side.

    .venv/bin/python benchmarks/runtimes_demo.py [MANIFEST] [--variants torch,onnx,int8]

MANIFEST defaults to the Tux Paint demo data (``unibind data tuxpaint``). Every variant extracts
into its own empty feature cache (nothing reused), offline profile.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

VARIANTS = {"torch": ("torch", None), "onnx": ("onnx", None), "int8": ("onnx", "int8")}


def metrics(run_path: Path) -> dict[str, float]:
    """Cross-modal mean mAP@10 and R@1 on the test split, by label and by group."""
    from unibind.eval.metrics import cross_modal_mean, pair_metrics
    from unibind.features.splits import group_keys
    from unibind.run.folder import Run

    run = Run.load(run_path)
    emb = run.embed(run.load_features(None), split="test")
    groups = {m: group_keys(emb.table(m)).astype(str).to_numpy() for m in emb.vectors}
    out = {}
    for level, labels in (("class", emb.labels), ("instance", groups)):
        pairs = pair_metrics(emb.vectors, labels)
        for key in ("mAP@10", "R@1"):
            out[f"{level} {key}"] = cross_modal_mean(pairs, key)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", nargs="?", type=Path)
    ap.add_argument("--variants", default="torch,onnx,int8")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from unibind.features.extract import extract
    from unibind.training.trainer import train
    from unibind.util.runtime import cache_root

    manifest = args.manifest or cache_root() / "data" / "tuxpaint" / "manifest.parquet"
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            runtime, quantize = VARIANTS[name]
            root = Path(tmp) / name
            t0 = time.perf_counter()
            summary = extract(manifest, root / "features", profile="offline",
                              cache_dir=root / "cache", runtime=runtime, quantize=quantize)
            seconds = time.perf_counter() - t0
            train(root / "features", root / "run", seed=0)
            counts = {m: s["computed"] for m, s in summary["modalities"].items()}
            rows[name] = {"extract s": seconds, "items": counts, **metrics(root / "run")}
    base = rows[next(iter(rows))]
    keys = [k for k in base if k not in ("extract s", "items")]
    print(f"manifest {manifest}; items {base['items']}; {len(os.sched_getaffinity(0))} cores, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| variant | extract s | speed-up | " + " | ".join(keys) + " |")
    print("|---|---:|---:|" + "---:|" * len(keys))
    for name, r in rows.items():
        cells = " | ".join(f"{r[k]:.4f} ({r[k] - base[k]:+.4f})" for k in keys)
        print(f"| {name} | {r['extract s']:.1f} | {base['extract s'] / r['extract s']:.2f}x | "
              f"{cells} |")


if __name__ == "__main__":
    main()
