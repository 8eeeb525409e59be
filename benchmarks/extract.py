"""Extraction throughput: end-to-end ``unibind.extract`` vs bare model forward, per modality.

End-to-end = decode + preprocess + forward + cache write + features write (model loading timed
separately and excluded). Bare = the model's forward alone on pre-made processor tensors of the
same inputs and batch size. Also times the fully cached re-run. Prints a Markdown table.

    python benchmarks/extract.py                 # tiny models (seconds)
    python benchmarks/extract.py --full          # full-size RANDOM-weight seed architectures
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

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

from unibind.encoders import EncoderSpec, load_encoder, resolve_profile
from unibind.encoders.tiny import _vocab
from unibind.features.extract import extract
from unibind.features.manifest import write_manifest
from unibind.util.atomic import atomic_folder
from unibind.util.runtime import cache_root

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


@torch.inference_mode()
def bare_forward_seconds(spec: EncoderSpec, manifest_root: Path, n: int, batch: int) -> float:
    enc = load_encoder(spec)
    ext = {"image": "jpg", "audio": "wav"}
    if spec.modality == "text":
        import pandas as pd

        table = pd.read_parquet(manifest_root / "manifest.parquet")
        items = table[table.modality == "text"]["text"].tolist()
    else:
        items = [manifest_root / f"{i}.{ext[spec.modality]}" for i in range(n)]
    decoded = [enc.load(x) for x in items]
    order = sorted(range(n), key=lambda i: enc.sort_key(decoded[i]))
    batches = [[decoded[i] for i in order[s:s + batch]] for s in range(0, n, batch)]
    if spec.modality == "text":
        tensors = [enc.to_device(dict(enc.tokenizer(b, padding=True, truncation=True,
                                                    max_length=enc.max_length,
                                                    return_tensors="pt"))) for b in batches]
        start = time.perf_counter()
        for t in tensors:
            enc.model(**t)
    else:  # image/audio: load() already returned the processor tensors (pixels, log-mels)
        start = time.perf_counter()
        for b in batches:
            enc.forward(b)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size random seed models")
    parser.add_argument("--n", type=int, default=None, help="items per modality")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n = args.n or (16 if args.full else 64)
    specs = full_size_specs() if args.full else resolve_profile("tiny")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_items(tmp, n, audio_seconds=5.0)
        for modality, spec in specs.items():
            load_start = time.perf_counter()
            load_encoder(spec)
            load_s = time.perf_counter() - load_start
            bare = bare_forward_seconds(spec, tmp, n, args.batch)
            only = {m: (s if m == modality else None) for m, s in specs.items()}
            sub = write_manifest(_subset(manifest, modality), tmp / f"{modality}.parquet")
            cache = tmp / f"cache-{modality}"
            start = time.perf_counter()
            extract(sub, tmp / f"f-{modality}", profile="tiny", overrides=only, cache_dir=cache,
                    batch_size=args.batch)
            e2e = time.perf_counter() - start - load_s
            start = time.perf_counter()
            extract(sub, tmp / f"g-{modality}", profile="tiny", overrides=only, cache_dir=cache,
                    batch_size=args.batch)
            cached = time.perf_counter() - start
            rows.append((modality, spec.source.split("/")[-1], n / bare, n / e2e, bare / e2e,
                         n / cached, (e2e + load_s) / cached))
    print(f"\n{'full-size random' if args.full else 'tiny'} models, {n} items per modality, "
          f"batch {args.batch}, {torch.get_num_threads()} threads\n")
    print("| modality | model | bare forward items/s | end-to-end items/s | e2e / bare "
          "| cached re-run items/s | first run / cached |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.2f} | {r[5]:.0f} "
              f"| {r[6]:.0f}x |")


def _subset(manifest: Path, modality: str):
    import pandas as pd

    table = pd.read_parquet(manifest)
    return table[table.modality == modality]


if __name__ == "__main__":
    main()
