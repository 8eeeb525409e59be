"""Data builder throughput: loopback download (with a cut + resume), ESC-50 extraction and fold
merge at the real clip format (44.1 kHz mono 16-bit, 5 s), and captions (compute vs cache).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/data_builders.py [--classes 5] [--full-blip]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import logging
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from unibind.data.captions import CaptionConfig, caption_manifest
from unibind.data.download import download
from unibind.data.esc50 import build_esc50
from unibind.data.manifest import write_manifest

spec = importlib.util.spec_from_file_location(
    "fx", Path(__file__).parent.parent / "tests" / "fixtures" / "data_builders.py")
fx = importlib.util.module_from_spec(spec)
sys.modules["fx"] = fx
spec.loader.exec_module(fx)


def esc50_real_format(classes: int) -> bytes:
    """ESC-50-shaped zip with real-format clips: 5 folds x 8 clips per class."""
    sr, n = 44100, 5 * 44100
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        k = 0
        for target in range(classes):
            for fold in range(1, 6):
                for j in range(8):
                    name = f"{fold}-{k}-A-{target}.wav"
                    wav = io.BytesIO()
                    sf.write(wav, (rng.standard_normal(n) * 0.1).astype(np.float32), sr,
                             format="WAV", subtype="PCM_16")
                    zf.writestr(f"ESC-50-master/audio/{name}", wav.getvalue())
                    lines.append(f"{name},{fold},{target},class{target},False,{k},A")
                    k += 1
        zf.writestr("ESC-50-master/meta/esc50.csv", "\n".join(lines) + "\n")
    return buf.getvalue()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=5, help="ESC-50 classes (real: 50)")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--full-blip", action="store_true",
                    help="also a BLIP-base-size random-weight model (slow on CPU)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = esc50_real_format(args.classes)
        mb = len(data) / 2**20
        clips = args.classes * 40
        with fx.LoopbackServer() as srv:
            srv.files["/a.zip"] = fx.Served(data)
            srv.files["/b.zip"] = fx.Served(data, cuts=[len(data) // 3])
            _, t = timed(lambda: download(srv.url("a.zip"), tmp / "a.zip", progress=False))
            rows.append(("download (loopback)", f"{mb:.0f} MB", t, f"{mb / t:.0f} MB/s"))
            _, t = timed(lambda: download(srv.url("b.zip"), tmp / "b.zip", progress=False,
                                          backoff=0))
            rows.append(("download, cut at 1/3 + resume", f"{mb:.0f} MB", t, f"{mb / t:.0f} MB/s"))
        _, t = timed(lambda: build_esc50(tmp / "flat", source=tmp / "a.zip", progress=False))
        rows.append(("esc50 extract + manifest", f"{clips} clips", t, f"{clips / t:.0f} clips/s"))
        _, t = timed(lambda: build_esc50(tmp / "m", source=tmp / "a.zip", merge_folds=True,
                                         progress=False))
        rows.append(("esc50 extract + fold merge", f"{clips} clips", t,
                     f"{clips / t:.0f} clips/s"))
        _, t = timed(lambda: build_esc50(tmp / "m", source=tmp / "a.zip", merge_folds=True,
                                         progress=False))
        rows.append(("esc50 fold merge re-run (all reused)", f"{clips} clips", t,
                     f"{clips / t:.0f} clips/s"))

        img_rows = []
        for i in range(args.images):
            p = fx.save_image(tmp / "img" / f"{i}.png", (224, 224), seed=i)
            img_rows.append({"id": f"i{i}", "modality": "image", "label": "x",
                             "path": p.relative_to(tmp).as_posix()})
        manifest = write_manifest(pd.DataFrame(img_rows), tmp / "images.parquet")
        models = [("tiny BLIP", fx.tiny_blip(tmp / "tiny"))]
        if args.full_blip:
            from transformers import BlipConfig, BlipForConditionalGeneration

            full = tmp / "full"
            fx.tiny_blip(full)  # tokenizer/processor, then overwrite the model with base size
            tok_vocab = (full / "vocab.txt").read_text().split()
            cfg = BlipConfig(text_config={"vocab_size": len(tok_vocab), "bos_token_id": 5,
                                          "pad_token_id": 0, "sep_token_id": 3,
                                          "eos_token_id": 3},
                             vision_config={"image_size": 384})
            BlipForConditionalGeneration(cfg).save_pretrained(full)
            from transformers import BlipImageProcessor
            BlipImageProcessor(size={"height": 384, "width": 384}).save_pretrained(full)
            models.append(("BLIP-base size (random)", full))
        for name, model in models:
            n = args.images if "tiny" in name else min(args.images, 8)
            sub = manifest if n == args.images else write_manifest(
                pd.DataFrame(img_rows[:n]), tmp / f"images{n}.parquet")
            for bs in (1, 8):
                cfg = CaptionConfig(str(model), max_new_tokens=20)
                cache = tmp / f"cache-{name}-{bs}"
                _, t = timed(lambda: caption_manifest(sub, cfg, tmp / "c.parquet", cache_dir=cache,
                                                      batch_size=bs, device="cpu",
                                                      progress=False))
                rows.append((f"captions {name}, batch {bs}", f"{n} images", t,
                             f"{n / t:.1f} img/s"))
            _, t2 = timed(lambda: caption_manifest(sub, cfg, tmp / "c.parquet", cache_dir=cache,
                                                   batch_size=8, device="cpu", progress=False))
            rows.append((f"captions {name}, cached re-run", f"{n} images", t2,
                         f"{t / t2:.0f}x faster"))
    print(f"| {'step':<48} | {'size':>12} | {'seconds':>8} | {'rate':>14} |")
    print(f"|{'-' * 50}|{'-' * 14}|{'-' * 10}|{'-' * 16}|")
    for step, size, t, rate in rows:
        print(f"| {step:<48} | {size:>12} | {t:>8.2f} | {rate:>14} |")


if __name__ == "__main__":
    sys.exit(main())
