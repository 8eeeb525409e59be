"""Items/s of each ``offline``-profile encoder on this machine (decode + encode, batched).

Inputs are realistic: short captions (~8 words), 600x400 JPEG photos (scikit-image's coffee and
chelsea, resized per item) and 5-s mono clips (a natural recording from tests/fixtures/audio,
ESC-50's clip length). Times exclude model loading (reported separately).

    .venv/bin/python benchmarks/offline_speed.py [--items 64] [--batch-size 32] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from unibind.encoders import load_encoder, resolve_profile

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio"
WORDS = ("dog bark rain roof bell church engine car bird song water drip door knock wind "
         "glass crash clock tick train horn crowd cheer").split()


def _texts(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, 8)) for _ in range(n)]


def _images(n: int, folder: Path) -> list[Path]:
    from skimage import data

    photos = [Image.fromarray(data.coffee()), Image.fromarray(data.chelsea()).resize((600, 400))]
    paths = []
    for i in range(n):
        path = folder / f"img{i}.jpg"
        photos[i % 2].rotate(i % 7).save(path, quality=90)
        paths.append(path)
    return paths


def _clips(n: int, folder: Path, seconds: float = 5.0) -> list[Path]:
    wave, rate = sf.read(FIXTURES / "bee.ogg", dtype="float32")
    reps = int(np.ceil(seconds * rate / len(wave)))
    long = np.tile(wave, reps)[: int(seconds * rate)]
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.wav"
        sf.write(path, np.roll(long, i * 997), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def measure(modality: str, items: list, batch_size: int) -> dict[str, float]:
    spec = resolve_profile("offline")[modality]
    t0 = time.perf_counter()
    enc = load_encoder(spec)
    load_s = time.perf_counter() - t0
    enc.encode(items[:batch_size], batch_size=batch_size)  # warm-up (oneDNN builds kernels)
    t0 = time.perf_counter()
    decoded = [enc.load(item) for item in items]
    t1 = time.perf_counter()
    enc.encode_decoded(decoded, batch_size=batch_size)
    t2 = time.perf_counter()
    return {"dim": enc.dim, "load_s": load_s, "decode_per_s": len(items) / (t1 - t0),
            "encode_per_s": len(items) / (t2 - t1), "total_per_s": len(items) / (t2 - t0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {"text": _texts(args.items), "image": _images(args.items, Path(tmp)),
                  "audio": _clips(args.items, Path(tmp))}
        rows = {m: measure(m, items, args.batch_size) for m, items in inputs.items()}
    what = {"text": "8-word caption", "image": "600x400 JPEG", "audio": "5 s clip"}
    print(f"offline encoders, {args.items} items, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")
    print("| modality | input | dim | load s | decode items/s | encode items/s | total items/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for m, r in rows.items():
        print(f"| {m} | {what[m]} | {r['dim']} | {r['load_s']:.1f} | {r['decode_per_s']:.1f} | "
              f"{r['encode_per_s']:.1f} | {r['total_per_s']:.1f} |")


if __name__ == "__main__":
    main()
