"""Extraction items/s per runtime, side by side: torch vs ONNX Runtime (fp32, and int8).

End to end as ``unibind extract`` runs it (the local engine: decode + collate in worker threads,
forward, cache shard writes into a scratch cache), model loading excluded (reported apart; the
ONNX graphs are exported to the user cache first). Inputs as benchmarks/offline_speed.py: 8-word
captions, 600x400 JPEGs, 5-s clips. Per-item cosine between each runtime's vectors and torch's.

    .venv/bin/python benchmarks/runtimes.py [--items 64] [--repeats 3] [--int8] [--profile tiny]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline_speed import _clips, _images, _texts  # noqa: E402
from unibind.encoders import load_encoder, resolve_profile  # noqa: E402
from unibind.encoders.onnx_runtime import cpu_threads, with_quantize  # noqa: E402
from unibind.features import local_engine, work  # noqa: E402
from unibind.features.cache import FeatureCache  # noqa: E402


def _work(items: list) -> list[work.WorkItem]:
    """(id, digest, input) sorted as extract sorts them (largest first)."""
    sized = [(len(x) if isinstance(x, str) else os.path.getsize(x), f"i{i}", x)
             for i, x in enumerate(items)]
    sized.sort(key=lambda w: -w[0])
    return [(i, hashlib.sha256(i.encode()).hexdigest(), x) for _, i, x in sized]


def run(spec, runtime: str, items: list, batch: int, repeats: int) -> dict:
    t0 = time.perf_counter()
    enc = load_encoder(spec, device="cpu", runtime=runtime)
    load_s = time.perf_counter() - t0
    planned = work.plan_batches(_work(items), batch)
    rates, vectors = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        local_engine.encode_local(enc, planned[:1], FeatureCache(Path(tmp) / "w", "w"))  # warm
        for r in range(repeats):
            t0 = time.perf_counter()
            vectors, _ = local_engine.encode_local(enc, planned,
                                                   FeatureCache(Path(tmp) / str(r), "x"))
            rates.append(len(items) / (time.perf_counter() - t0))
    return {"runtime": enc.runtime, "load_s": load_s, "rates": rates,
            "vectors": np.stack([vectors[f"i{i}"] for i in range(len(items))])}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per runtime")
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--int8", action="store_true", help="also the int8 graphs")
    parser.add_argument("--modalities", default="text,image,audio")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    specs = resolve_profile(args.profile)
    what = {"text": "8-word caption", "image": "600x400 JPEG", "audio": "5 s clip"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        makers = {"text": lambda: _texts(args.items), "image": lambda: _images(args.items,
                  Path(tmp)), "audio": lambda: _clips(args.items, Path(tmp))}
        for m in args.modalities.split(","):
            items = makers[m]()
            variants = [("torch", specs[m], "torch"), ("onnx", specs[m], "onnx")]
            if args.int8:
                variants.append(("onnx int8", with_quantize(specs[m], "int8"), "onnx"))
            for name, spec, runtime in variants[1:]:  # export (if needed) before timing
                load_encoder(spec, device="cpu", runtime=runtime)
            res = {name: run(spec, rt, items, args.batch_size, args.repeats)
                   for name, spec, rt in variants}
            base = res["torch"]
            for name, r in res.items():
                cos = cosines(r["vectors"], base["vectors"])
                ratio = np.median(r["rates"]) / np.median(base["rates"])
                rows.append((m, what.get(m, m), name, r["load_s"], min(r["rates"]),
                             np.median(r["rates"]), max(r["rates"]), ratio, cos.min()))
    print(f"profile {args.profile}, {args.items} items, batch {args.batch_size}, "
          f"{args.repeats} timed passes, {cpu_threads()} usable cores")
    print("| modality | input | runtime | load s | items/s min | median | max | "
          "vs torch (median) | min cosine vs torch |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for m, w, name, load, lo, med, hi, ratio, cos in rows:
        print(f"| {m} | {w} | {name} | {load:.1f} | {lo:.1f} | {med:.1f} | {hi:.1f} | "
              f"{ratio:.2f}x | {cos:.6f} |")


if __name__ == "__main__":
    main()
