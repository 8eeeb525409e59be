"""run -> index: build, open and extend a run's index in any store (a faiss folder by default,
``stores.faiss``; a Milvus collection by URI, ``stores.milvus``), with provenance checks that
refuse an index made from another run or other encoders."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unibind.features.folder import Features, load_features
from unibind.modalities import ordered
from unibind.run.folder import Run
from unibind.search.parts import SpaceIndexError
from unibind.search.stores import VectorStore, create_store, is_store_uri, open_store
from unibind.search.stores.faiss import (
    DEFAULT_BUDGET_GB,
    FORMAT,
    META_COLUMNS,
    create_faiss_index,
    load_index,
)

log = logging.getLogger(__name__)


class IndexMismatch(SpaceIndexError):
    """An index (or a query encoder) that does not belong to the run it is used with."""


def default_index_path(run_path: str | os.PathLike) -> Path:
    """A run's default index folder: ``RUN/index``."""
    return Path(run_path) / "index"


def provenance(run: Run) -> dict[str, Any]:
    """What an index must agree on with a run (and a query encoder with the index)."""
    encoders = {m: {"fingerprint": e.get("fingerprint"), "identity": e.get("identity"),
                    "dim": e.get("dim")} for m, e in run.encoders.items()}
    return {"encoders": encoders, "head_digest": run.head_digest, "embed_dim": run.embed_dim,
            "dims": dict(run.heads.cfg.dims)}


def check_provenance(recorded: dict[str, Any], run: Run, where: str = "index") -> None:
    """Refuse an index built from another run; the message names every difference."""
    now = provenance(run)
    diffs = []
    if recorded.get("head_digest") != now["head_digest"]:
        diffs.append(f"head digest {str(recorded.get('head_digest'))[:12]} (index) != "
                     f"{str(now['head_digest'])[:12]} (run)")
    if recorded.get("embed_dim") != now["embed_dim"]:
        diffs.append(f"embedding dim {recorded.get('embed_dim')} != {now['embed_dim']}")
    for m in sorted(set(recorded.get("encoders", {})) | set(now["encoders"])):
        a, b = recorded.get("encoders", {}).get(m), now["encoders"].get(m)
        if a is None or b is None:
            diffs.append(f"{m}: encoder only in the {'run' if a is None else 'index'}")
            continue
        for key in ("fingerprint", "dim", "identity"):
            if a.get(key) != b.get(key):
                diffs.append(f"{m} encoder {key}: {_short(a.get(key))} (index) != "
                             f"{_short(b.get(key))} (run)")
    if diffs:
        raise IndexMismatch(f"{where} was built from another run than {run.path}: "
                            + "; ".join(diffs) + ". Rebuild it with `unibind index RUN`.")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def item_table(feats: Features, items: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of ``items`` (default: every feature item) with the metadata columns filled and
    media paths made absolute (so results can be opened anywhere)."""
    items = (feats.items if items is None else items).copy()
    for col in META_COLUMNS:
        if col not in items:
            items[col] = ""
        items[col] = items[col].fillna("").astype(str)
    if feats.manifest_path is not None:
        root = feats.manifest_path.parent
        has = items["path"] != ""
        items.loc[has, "path"] = [str((root / p).resolve()) for p in items.loc[has, "path"]]
    return items


def embed_features(run: Run, feats: Features, center: bool
                   ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Items (modalities the run has heads for, in matrix order) and their unit vectors."""
    emb = run.embed(feats, center=center)
    return item_table(feats, emb.items), emb.vectors


def build_index(run_path: str | os.PathLike, out: str | os.PathLike | None = None,
                factory: str | None = None, memory_budget_gb: float = DEFAULT_BUDGET_GB,
                center: bool | None = None, features: Features | str | os.PathLike | None = None,
                store: str | None = None) -> dict[str, Any]:
    """Project every item of the run's features and index it; returns a summary.

    ``store``: a Milvus URI (``milvus://PATH.db``, ``http://HOST:19530``) to write the vectors
    to instead of a faiss folder (``factory`` is then a Milvus index type, default FLAT)."""
    run = Run.load(run_path)
    feats = run.load_features(features)
    if center is None:
        center = run.search_center
    items, vectors = embed_features(run, feats, center)
    meta = {"format": FORMAT, "run": str(Path(run.path).resolve()), "provenance": provenance(run),
            "reach": run.reach, "center": center, "memory_budget_gb": memory_budget_gb,
            "metric": "inner_product"}
    skipped = {m: f"{int((feats.items['modality'] == m).sum())} item(s) not indexed: the run "
                  f"has no {m} head" for m in feats.modalities if m not in run.modalities}
    for m, why in skipped.items():
        log.warning("%s: %s", m, why)
    target = store or (str(out) if is_store_uri(str(out)) else None)
    if target:
        stored = create_store(target, meta, items, vectors, factory)
        log.info("indexed %d item(s) in %s", len(stored), stored.path)
        return {**summary(stored, stored.path), "not_indexed": skipped}
    index = create_faiss_index(out or default_index_path(run.path), meta, items, vectors, factory)
    return {**summary(index, index.path), "not_indexed": skipped}


def summary(index: VectorStore, path: Path | str) -> dict[str, Any]:
    """The index summary ``index`` and ``index add`` print: path, count, centring, item count
    per modality, parts."""
    counts = index.items["modality"].value_counts()
    return {"index": str(path), "count": len(index), "center": index.center,
            "modalities": {m: int(counts[m]) for m in ordered(counts.index)},
            "parts": index.part_summary()}


def open_index(run: Run, path: str | os.PathLike | None = None) -> VectorStore:
    """Load the run's index (a folder, or a store URI such as ``milvus://PATH.db``) and check
    that it was built from this run."""
    if is_store_uri(path):
        index = open_store(path)
        check_provenance(index.meta.get("provenance", {}), run, where=f"index {path}")
        return index
    path = Path(path) if path else default_index_path(run.path)
    index = load_index(path)
    check_provenance(index.meta.get("provenance", {}), run, where=f"index {path}")
    return index


def add_items(run_path: str | os.PathLike, manifest: str | os.PathLike,
              index_path: str | os.PathLike | None = None,
              cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Extract the manifest's new items with the run's own encoders (the feature cache makes
    known items free), project them and append them to the index without a rebuild."""
    import tempfile

    from unibind.data.manifest import read_manifest, write_manifest
    from unibind.encoders import EncoderSpec
    from unibind.features.extract import extract

    run = Run.load(run_path)
    index = open_index(run, index_path)
    table = read_manifest(manifest, check_files=False)
    new = table.table[~table.table["id"].isin(set(index.items["id"]))
                      & table.table["modality"].isin(index.modalities or run.modalities)]
    skipped = len(table.table) - len(new)
    if not len(new):
        return {**summary(index, index.path), "added": 0, "skipped": skipped, "errors": []}
    overrides = {m: EncoderSpec.from_dict(run.encoders[m]["spec"])
                 for m in set(new["modality"]) if "spec" in run.encoders.get(m, {})}
    missing = sorted(set(new["modality"]) - set(overrides))
    if missing:
        raise SpaceIndexError(f"run {run.path} records no encoder spec for {missing}")
    # the new items' manifest sits beside the original (its relative paths stay valid)
    part = Path(manifest).parent / f".unibind-add-{os.getpid()}.parquet"
    try:
        write_manifest(new, part)
        with tempfile.TemporaryDirectory(prefix="unibind-add-") as tmp:
            result = extract(part, Path(tmp) / "features", profile="seed", overrides=overrides,
                             cache_dir=cache_dir)
            feats = load_features(Path(tmp) / "features")
            for m, enc in feats.meta.get("encoders", {}).items():
                want = index.meta["provenance"]["encoders"].get(m, {}).get("fingerprint")
                if enc.get("fingerprint") != want:
                    raise IndexMismatch(f"{m} items were embedded with encoder fingerprint "
                                        f"{enc.get('fingerprint')} but the index holds {want}")
            items, vectors = embed_features(run, feats, index.center)
    finally:
        part.unlink(missing_ok=True)
    added = index.add(items, vectors)
    path = index.save()
    log.info("added %d item(s) to %s", added, path)
    return {**summary(index, path), "added": added, "skipped": skipped,
            "errors": result.get("errors", [])}
