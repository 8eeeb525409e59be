"""Fine-tuning speed and memory: steps/s and peak memory per precision / checkpointing / batch.

Each configuration runs ``unibind.training.finetune.finetune`` in a fresh subprocess on the same
synthetic labelled media (tiny models by default, ``--profile offline`` for the offline encoders)
and reports optimizer steps per second of the fit (validation included, model loading and run
writing excluded) and peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's
peak RSS on the CPU. Prints a Markdown table.

    python benchmarks/finetune.py                       # tiny models, this machine
    python benchmarks/finetune.py --device cuda --profile seed --batches 8,32
"""

from __future__ import annotations

import os

# As the CLI does (unibind/cli/__init__.py): idle OpenMP threads sleep instead of spinning; set
# before torch loads. Measured here: CLAP e2e / bare 0.51 spinning vs 1.01 passive (2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.conftest import make_media_folder

    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract
    from unibind.training.config import override, preset
    from unibind.training.finetune import finetune
    from unibind.util.runtime import pick_device

    steps = {"n": 0}
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(
        lambda *a: steps.__setitem__("n", steps["n"] + 1))
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = build_folder_manifest(make_media_folder(tmp / "d", per_label=args.per_label,
                                                           seconds=1.0))
        extract(manifest, tmp / "feats", profile=args.profile, cache_dir=tmp / "cache",
                device=device)
        cfg = override(preset("default"), epochs=args.epochs, patience=0,
                       finetune_batch_size=args.batch, val_fraction=0.2, test_fraction=0.2,
                       finetune_layers=args.layers)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        summary = finetune(tmp / "feats", tmp / "run", config=cfg, device=device,
                           precision=args.precision, checkpointing=args.checkpointing)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"steps_per_s": steps["n"] / summary["seconds"], "peak_mib": peak / 2**20,
            "steps": steps["n"], "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", default="8,32")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-label", type=int, default=24)
    parser.add_argument("--layers", type=int, default=2, help="trainable backbone layers")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.one:
        print(json.dumps(one(args)))
        return
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        for precision in args.precisions.split(","):
            for ckpt in (False, True):
                cmd = [sys.executable, __file__, "--one", "--profile", args.profile,
                       "--device", args.device, "--batch", str(batch), "--precision", precision,
                       "--epochs", str(args.epochs), "--per-label", str(args.per_label),
                       "--layers", str(args.layers)] + (["--checkpointing"] if ckpt else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((batch, precision, ckpt, res))
    device = rows[0][3]["device"]
    memory = "peak CUDA memory MiB" if device.startswith("cuda") else "peak RSS MiB"
    print(f"\n{args.profile} models, {device}, {args.epochs} epochs, {3 * args.per_label} items "
          f"per modality, last {args.layers} backbone layers trainable\n")
    print(f"| batch | precision | grad checkpointing | steps/s | {memory} |")
    print("|---:|---|---|---:|---:|")
    for batch, precision, ckpt, res in rows:
        print(f"| {batch} | {precision} | {'yes' if ckpt else 'no'} | "
              f"{res['steps_per_s']:.2f} | {res['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
