"""Find the thing and its category: instance and class level, side by side in one run.

    python benchmarks/instance.py ~/.cache/unibind/demo/features        # the demo's features
    python benchmarks/instance.py --synthetic                            # unibind synthetic data

Runs on the same split (the default split recipe): ``bound`` (``unibind bind``, when the features
can be bound), ``class`` (the former default preset: class positives, new heads), ``default``
(bound start, positives at both levels, WiSE-FT share chosen on validation) and any variant given
with ``--variant name:field=value,...``. Prints, per run, the validation score the recipe selects
on and, on the test split, instance R@1 per cross-modal pair, their mean, class mAP@10 (mean),
and the training seconds. Selection uses validation data only; the test figures are reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from unibind.binding.bind import BindError, bind
from unibind.eval.evaluate import evaluate
from unibind.features.folder import load_features
from unibind.training.config import preset
from unibind.training.trainer import train

PAIRS = ("text->image", "image->text", "text->audio", "image->audio", "audio->text",
         "audio->image")


def parse_variant(text: str) -> tuple[str, str, dict[str, Any]]:
    """``name:base:field=value,...`` (values as JSON, else strings)."""
    name, base, *rest = text.split(":")
    changes: dict[str, Any] = {}
    for part in (rest[0].split(",") if rest and rest[0] else []):
        key, value = part.split("=", 1)
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    if isinstance(changes.get("mix_shares"), list):
        changes["mix_shares"] = tuple(changes["mix_shares"])
    return name, base, changes


def headline_ranks(run_path: Path, query: str, stem: str) -> str:
    """Rank of the item with file stem ``stem`` among all images / all sounds for ``query``
    (plain per-modality search, as the demo's headline line)."""
    import numpy as np

    from unibind.encoders import load_encoder
    from unibind.run.folder import Run

    run = Run.load(run_path)
    if "text" not in run.encoders:
        return "-"
    q = run.project("text", load_encoder(run.encoders["text"]["spec"]).encode([query]))
    emb = run.embed()
    out = []
    for m in ("image", "audio"):
        if m not in emb.vectors or m not in run.reach.get("text", []):
            continue  # text does not reach it (a bound offline run's sounds): no rank to show
        stems = emb.table(m)["path"].map(lambda p: Path(str(p)).stem).to_numpy()
        order = np.argsort(-(q @ emb.vectors[m].T)[0], kind="stable")
        hit = np.flatnonzero(stems[order] == stem)
        out.append(f"{m} {hit[0] + 1 if len(hit) else '-'}")
    return ", ".join(out)


def row(name: str, metrics: dict[str, Any], val: float | None, seconds: float | None) -> str:
    inst = (metrics.get("instance") or {}).get("pairs", {})

    def r1(p: str) -> str:
        v = (inst.get(p) or {}).get("R@1")
        return "-" if v is None else f"{v:.3f}"

    mean = (metrics.get("instance") or {}).get("cross_modal", {}).get("R@1")
    cm = metrics["cross_modal"]["mAP@10"]
    cells = [name, "-" if val is None else f"{val:.3f}", *(r1(p) for p in PAIRS),
             "-" if mean is None else f"{mean:.3f}", "-" if cm is None else f"{cm:.3f}",
             "-" if seconds is None else f"{seconds:.1f}"]
    return "| " + " | ".join(cells) + " |"


def headline(args: argparse.Namespace, run_path: Path) -> str:
    if not args.headline:
        return ""
    query, stem = args.headline.rsplit(":", 1)
    return f" {headline_ranks(run_path, query, stem)} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("features", type=Path, nargs="?")
    ap.add_argument("--synthetic", action="store_true", help="generate synthetic features "
                    "(groups of text, image, audio in labelled classes)")
    ap.add_argument("--variant", action="append", default=[],
                    help="name:preset:field=value,... (e.g. cw1:default:class_weight=1.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="bound,class,default", help="built-in runs to include")
    ap.add_argument("--headline", default="", help="QUERY:STEM, e.g. 'a dog barking:dog': "
                    "print the rank of the STEM picture and sound for QUERY")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="unibind-bench-instance-") as tmp:
        feats_path = args.features
        if args.synthetic:
            from unibind.features.folder import save_features
            from unibind.features.synthetic import SyntheticSpec, generate

            feats_path = Path(tmp) / "features"
            syn = generate(SyntheticSpec())
            save_features(feats_path, syn.items, syn.arrays, syn.meta)
        feats = load_features(feats_path)
        runs: list[tuple[str, str, dict[str, Any]]] = []
        only = args.only.split(",")
        runs += [(n, n, {}) for n in ("class", "default") if n in only]
        runs += [parse_variant(v) for v in args.variant]
        print("| run | val score | " + " | ".join(f"inst R@1 {p}" for p in PAIRS)
              + " | inst R@1 mean | class mAP@10 | train s |"
              + (" headline ranks |" if args.headline else ""))
        print("|---|" + "---|" * (len(PAIRS) + 4 + bool(args.headline)))
        if "bound" in only:
            try:
                bind(feats, Path(tmp) / "bound")
                m = evaluate(Path(tmp) / "bound", write=False, compare_init=False)
                print(row("bound", m, None, None) + headline(args, Path(tmp) / "bound"),
                      flush=True)
            except BindError as exc:
                print(f"| bound | not available: {exc} |")
        for name, base, changes in runs:
            cfg = dataclasses.replace(preset(base), **changes)
            t0 = time.perf_counter()
            summary = train(feats, Path(tmp) / name, preset_name=base, config=cfg,
                            seed=args.seed)
            seconds = time.perf_counter() - t0
            m = evaluate(Path(tmp) / name, write=False, compare_init=False)
            print(row(name, m, summary.get("val_score"), seconds)
                  + headline(args, Path(tmp) / name), flush=True)


if __name__ == "__main__":
    main()
