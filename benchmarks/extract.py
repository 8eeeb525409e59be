"""Extraction throughput per modality: bare forward, decode-only per worker count, end to end.

- bare: the model's forward alone (``forward_batch``) on collated batches already on the device,
  at the run's batch size and at ``--big-batch`` (copies of the inputs);
- decode: ``prepare_batch`` alone (decode + preprocess + tokenise/collate) on N worker threads;
- end to end: ``unibind.extract`` (decode, preprocess, forward, cache and features writes; model
  loading timed separately and excluded) with ``--workers``; e2e / bare at the same batch.
On CUDA every timed region is closed by ``torch.cuda.synchronize()``. Each figure is the best of
``--repeat`` interleaved measurements (a shared CPU drifts). Prints a Markdown table.

    python benchmarks/extract.py                        # tiny models (seconds)
    python benchmarks/extract.py --full --device cuda   # full-size RANDOM-weight seed models
"""

from __future__ import annotations

import os

# As the CLI does (unibind/cli/__init__.py): idle OpenMP threads sleep instead of spinning; set
# before torch loads. Measured here: CLAP e2e / bare 0.51 spinning vs 1.01 passive (2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
)

from unibind.data.manifest import write_manifest
from unibind.encoders import EncoderSpec, load_encoder, resolve_profile
from unibind.encoders.tiny import _vocab
from unibind.features import work
from unibind.features.extract import extract
from unibind.util.atomic import atomic_folder
from unibind.util.runtime import cache_root, pick_device, pick_dtype

CLIP_L14_VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                   "num_attention_heads": 16, "image_size": 224, "patch_size": 14}


def full_size_specs() -> dict[str, EncoderSpec]:
    """Random-weight BERT-base, CLIP ViT-L/14 (vision tower; small text tower) and CLAP (HTSAT
    default config), built once from configs into the user cache."""
    root = cache_root() / "models"

    def build(name: str, fn) -> str:
        folder = root / f"bench-{name}"
        if not (folder / "config.json").is_file():
            logging.info("building random full-size %s in %s", name, folder)
            with atomic_folder(folder) as tmp:
                torch.manual_seed(0)
                fn(tmp)
        return str(folder)

    def bert(tmp: Path) -> None:
        (tmp / "vocab.txt").write_text("\n".join(_vocab()) + "\n")
        BertTokenizerFast(vocab_file=str(tmp / "vocab.txt")).save_pretrained(tmp)
        BertModel(BertConfig(vocab_size=30522)).save_pretrained(tmp)

    def clip(tmp: Path) -> None:
        small_text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "bos_token_id": 0, "eos_token_id": 2}
        CLIPModel(CLIPConfig(vision_config=CLIP_L14_VISION, text_config=small_text,
                             projection_dim=768)).save_pretrained(tmp)
        CLIPImageProcessorPil(size={"shortest_edge": 224},
                              crop_size={"height": 224, "width": 224}).save_pretrained(tmp)

    def clap(tmp: Path) -> None:
        ClapModel(ClapConfig(projection_dim=512)).save_pretrained(tmp)
        ClapFeatureExtractor().save_pretrained(tmp)

    return {"text": EncoderSpec("text", "hf-text", build("bert-base", bert),
                                options={"pooling": "pooler", "max_length": 512}),
            "image": EncoderSpec("image", "hf-clip", build("clip-l14", clip)),
            "audio": EncoderSpec("audio", "hf-clap", build("clap-htsat", clap))}


def make_items(root: Path, n: int, audio_seconds: float) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        img = rng.integers(0, 255, (300 + i % 7, 400, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"{i}.jpg", quality=90)
        wave = 0.1 * rng.standard_normal(int(audio_seconds * 44100)).astype(np.float32)
        sf.write(root / f"{i}.wav", wave, 44100)
        words = " ".join(rng.choice(["dog", "rain", "bell", "car", "wind"], 8 + i % 24))
        rows += [{"id": f"t{i}", "modality": "text", "label": "x", "text": f"a {words} {i}"},
                 {"id": f"i{i}", "modality": "image", "label": "x", "path": f"{i}.jpg"},
                 {"id": f"a{i}", "modality": "audio", "label": "x", "path": f"{i}.wav"}]
    import pandas as pd

    return write_manifest(pd.DataFrame(rows), root / "manifest.parquet")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def on_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: on_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(on_device(v, device) for v in batch)
    return batch


def inputs_of(modality: str, root: Path, n: int) -> list[tuple[str, str, Any]]:
    import pandas as pd

    table = pd.read_parquet(root / "manifest.parquet")
    rows = table[table.modality == modality].head(n)
    return [(r.id, r.id, r.text if modality == "text" else str(root / r.path))
            for r in rows.itertuples()]


@torch.inference_mode()
def bare_rate(enc, items: list, batch: int, device: torch.device) -> float:
    """items/s of forward_batch alone on device-resident batches (``items`` repeated to fill)."""
    decoded = [enc.load(x[2]) for x in items]
    decoded = (decoded * (batch // len(decoded) + 1))[:max(batch, len(decoded))]
    decoded.sort(key=enc.sort_key)
    batches = [on_device(enc.collate(decoded[s:s + batch]), device)
               for s in range(0, len(decoded), batch)]
    enc.forward_batch(batches[0])  # warm-up (kernels, allocator)
    sync(device)
    start = time.perf_counter()
    for b in batches:
        enc.forward_batch(b)
    sync(device)
    return len(decoded) / (time.perf_counter() - start)


def decode_rate(enc, items: list, batch: int, workers: int, repeat: int = 1) -> float:
    """items/s of prepare_batch alone (decode + preprocess + collate) on ``workers`` threads."""
    chunks = work.plan_batches(items * repeat, batch)
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        for _ in pool.map(lambda c: work.prepare_batch(enc, c), chunks):
            pass
    return len(items) * repeat / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size random seed models")
    parser.add_argument("--n", type=int, default=None, help="items per modality")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--big-batch", type=int, default=256, help="second bare batch (0: skip)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--workers", default="1,2", help="decode worker counts to time")
    parser.add_argument("--e2e-workers", type=int, default=None, help="default: cores")
    parser.add_argument("--modalities", default="text,image,audio")
    parser.add_argument("--preprocess", default="host", choices=["host", "device"])
    parser.add_argument("--repeat", type=int, default=3, help="best of N, interleaved")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = pick_device(args.device)
    dtype = pick_dtype(device, args.dtype)
    n = args.n or (16 if args.full else 64)
    counts = [int(w) for w in args.workers.split(",")]
    specs = full_size_specs() if args.full else resolve_profile("tiny")
    specs = {m: s for m, s in specs.items() if m in args.modalities.split(",")}
    if args.preprocess == "device":
        specs = {m: EncoderSpec.from_dict({**s.to_dict(), "options": {
            **s.options, "preprocess": "device"}}) if s.backend in ("hf-clip", "hf-clap") else s
            for m, s in specs.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_items(tmp, n, audio_seconds=5.0)
        for modality, spec in specs.items():
            load_start = time.perf_counter()
            enc = load_encoder(spec, device=device, dtype=dtype)
            sync(device)
            load_s = time.perf_counter() - load_start
            items = inputs_of(modality, tmp, n)
            only = {m: (s if m == modality else None) for m, s in specs.items()}
            sub = write_manifest(_subset(manifest, modality), tmp / f"{modality}.parquet")
            bare, big, e2e, decode = 0.0, 0.0, 0.0, dict.fromkeys(counts, 0.0)
            for r in range(args.repeat):  # interleaved, best of each: a shared CPU drifts
                bare = max(bare, bare_rate(enc, items, args.batch, device))
                if args.big_batch:
                    big = max(big, bare_rate(enc, items, args.big_batch, device))
                for w in counts:
                    decode[w] = max(decode[w], decode_rate(enc, items, args.batch, w, repeat=2))
                start = time.perf_counter()
                load_encoder(spec, device=device, dtype=dtype)  # what extract() spends loading
                sync(device)
                load_s = time.perf_counter() - start
                start = time.perf_counter()
                extract(sub, tmp / f"f-{modality}-{r}", profile="tiny", overrides=only,
                        cache_dir=tmp / f"cache-{modality}-{r}", batch_size=args.batch,
                        device=device, dtype=dtype, workers=args.e2e_workers)
                sync(device)
                e2e = max(e2e, n / (time.perf_counter() - start - load_s))
            rows.append((modality, spec.source.split("/")[-1], bare, big, decode, e2e))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu, {torch.get_num_threads()} torch threads"
    print(f"\n{'full-size random' if args.full else 'tiny'} models, {n} items per modality, "
          f"batch {args.batch}, {device} ({name}), {str(dtype).removeprefix('torch.')}, "
          f"e2e workers {args.e2e_workers or 'cores'}, preprocess {args.preprocess}, "
          f"best of {args.repeat}\n")
    dec = " | ".join(f"decode {w}w items/s" for w in counts)
    print(f"| modality | model | bare items/s (batch {args.batch}) | bare (batch "
          f"{args.big_batch}) | {dec} | decode {counts[-1]}w / 1w | end-to-end items/s "
          "| e2e / bare |")
    print("|---|---|---:|---:|" + "---:|" * len(counts) + "---:|---:|---:|")
    for m, model, bare, big, decode, e2e in rows:
        cells = " | ".join(f"{decode[w]:.1f}" for w in counts)
        big_cell = f"{big:.1f}" if big else "-"
        print(f"| {m} | {model} | {bare:.1f} | {big_cell} | {cells} | "
              f"{decode[counts[-1]] / decode[counts[0]]:.2f} | {e2e:.1f} | {e2e / bare:.2f} |")


def _subset(manifest: Path, modality: str):
    import pandas as pd

    table = pd.read_parquet(manifest)
    return table[table.modality == modality]


if __name__ == "__main__":
    main()
