"""A search index over every item of a run: one part per modality, metadata, provenance.

Layout of an index folder (default ``RUN/index``)::

    index.json            provenance (encoders, dims, head digest), centring, parts, counts
    items.parquet         one row per indexed item: id, modality, label, group, split, path, text
    vectors.safetensors   {modality: float32 [n_m, D]} and {"rows.<modality>": int64 global rows}
    <modality>.faiss      approximate parts only (faiss's own file format)

Each modality is its own part, so a search restricted to some modalities is exactly the
filtered search, and mixed searches can be merged per modality (``unibind.balance``). A part
is ``Flat`` (exact, ``unibind.knn``) or any faiss factory string (HNSW, IVF-PQ, SQ...).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
from safetensors import safe_open
from safetensors.numpy import save_file

from unibind.features.store import Features, load_features
from unibind.modalities import MODALITIES
from unibind.run.folder import Run
from unibind.search.parts import (
    Part,
    SpaceIndexError,
    additions,
    choose_factory,
    wanted_modalities,
)
from unibind.search.stores import VectorStore, create_store, is_store_uri, open_store
from unibind.util.atomic import atomic_folder
from unibind.util.jsonio import read_artifact_meta, write_json_atomic

log = logging.getLogger(__name__)

FORMAT = 1
DEFAULT_BUDGET_GB = 4.0
META_COLUMNS = ("id", "modality", "label", "group", "split", "path", "text")


class IndexMismatch(SpaceIndexError):
    """An index (or a query encoder) that does not belong to the run it is used with."""


def default_index_path(run_path: str | os.PathLike) -> Path:
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


@dataclass
class SpaceIndex:
    """Per-modality parts + item metadata + provenance (``index.json``)."""

    path: Path | None
    meta: dict[str, Any]
    items: pd.DataFrame
    parts: dict[str, Part]

    @property
    def center(self) -> bool:
        return bool(self.meta.get("center"))

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.parts]

    def __len__(self) -> int:
        return len(self.items)

    def pool_sizes(self) -> dict[str, int]:
        return {m: p.ntotal for m, p in self.parts.items()}

    def vector(self, row: int) -> np.ndarray | None:
        """The stored vector of one item (None when its part keeps no reconstructable copy)."""
        part = self.parts[str(self.items.iloc[row]["modality"])]
        local = int(np.flatnonzero(part.rows == row)[0])
        if part.exact is not None:
            return np.asarray(part.exact.x[local], dtype=np.float32)
        try:
            return part.faiss_index.reconstruct(local).astype(np.float32)
        except RuntimeError:  # an index without a direct map
            return None

    def lookup(self, rows: np.ndarray) -> pd.DataFrame:
        """Metadata of some rows, in the given order."""
        return self.items.iloc[np.asarray(rows, dtype=np.int64)].reset_index(drop=True)

    def part_summary(self) -> dict[str, dict[str, Any]]:
        return {m: {"factory": p.factory, "count": p.ntotal,
                    "bytes_per_vector": round(p.bytes_per_vector(), 1)}
                for m, p in self.parts.items()}

    def search(self, q: np.ndarray, k: int, modalities: list[str] | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{modality: (scores [nq, k], global rows [nq, k])}`` for the chosen modalities."""
        q = np.atleast_2d(np.asarray(q, dtype=np.float32))
        return {m: self.parts[m].search(q, k)
                for m in wanted_modalities(modalities, self.modalities)}

    def add(self, items: pd.DataFrame, vectors: dict[str, np.ndarray]) -> int:
        """Append items (rows of ``items`` per modality, in ``vectors`` row order)."""
        added = 0
        for m, new, vecs in additions(items, vectors):
            rows = np.arange(len(self.items), len(self.items) + len(new))
            self.items = pd.concat([self.items, new[list(META_COLUMNS)]], ignore_index=True)
            if m in self.parts:
                self.parts[m].add(vecs, rows)
            else:
                factory = choose_factory(len(new), vecs.shape[1], _budget(self.meta))
                self.parts[m] = Part.build(factory, vecs, rows)
            added += len(new)
        self.meta["count"] = len(self.items)
        return added

    def save(self, path: str | os.PathLike | None = None) -> Path:
        path = Path(path or self.path)
        vectors = self._all_vectors()
        with atomic_folder(path) as tmp:
            save_file(vectors, str(tmp / "vectors.safetensors"))
            self.items.to_parquet(tmp / "items.parquet", index=False)
            for m, part in self.parts.items():
                if part.faiss_index is not None:
                    faiss.write_index(part.faiss_index, str(tmp / f"{m}.faiss"))
            self.meta["parts"] = {m: {"factory": p.factory, "count": p.ntotal,
                                      "params": p.params} for m, p in self.parts.items()}
            self.meta["count"] = len(self.items)
            write_json_atomic(tmp / "index.json", self.meta)
        self.path = path
        return path

    def _all_vectors(self) -> dict[str, np.ndarray]:
        """Global rows of every part, and the vectors of exact parts (faiss keeps its own)."""
        out = {}
        for m, part in self.parts.items():
            out[f"rows.{m}"] = part.rows
            if part.exact is not None:
                out[m] = part.exact.x
        return out


def _budget(meta: dict[str, Any]) -> float:
    return float(meta.get("memory_budget_gb", DEFAULT_BUDGET_GB)) * 2**30


def load_index(path: str | os.PathLike) -> SpaceIndex:
    """Read an index folder written by ``build_index`` / ``SpaceIndex.save``."""
    path = Path(path)
    meta = read_artifact_meta(path, ["index.json"], SpaceIndexError, "an index",
                              "create one with `unibind index RUN`")
    if meta.get("format") != FORMAT:
        raise SpaceIndexError(f"{path}: index format {meta.get('format')} != {FORMAT}")
    try:
        items = pd.read_parquet(path / "items.parquet")
        parts = {}
        with safe_open(str(path / "vectors.safetensors"), framework="numpy") as fh:
            for m, info in meta.get("parts", {}).items():
                parts[m] = Part.load(fh, m, info, int(meta["provenance"]["embed_dim"]), path)
    except Exception as exc:  # truncated or foreign files: name them, no traceback
        raise SpaceIndexError(f"{path}: damaged index folder ({type(exc).__name__}: {exc}); "
                              "rebuild it with `unibind index RUN`") from exc
    for m in parts:
        if parts[m].ntotal != (items["modality"] == m).sum():
            raise SpaceIndexError(f"{path}: {m} has {parts[m].ntotal} vectors but "
                                  f"{int((items['modality'] == m).sum())} items")
    return SpaceIndex(path=path, meta=meta, items=items, parts=parts)


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
            "center": center, "memory_budget_gb": memory_budget_gb, "metric": "inner_product"}
    target = store or (str(out) if is_store_uri(str(out)) else None)
    if target:
        stored = create_store(target, meta, items, vectors, factory)
        log.info("indexed %d item(s) in %s", len(stored), stored.path)
        return summary(stored, stored.path)
    index = SpaceIndex(path=None, meta=meta, items=items.iloc[:0][list(META_COLUMNS)],
                       parts={})
    for m, vecs in vectors.items():
        rows = np.arange(len(index.items), len(index.items) + len(vecs))
        fac = factory or choose_factory(len(vecs), vecs.shape[1], _budget(meta))
        index.parts[m] = Part.build(fac, vecs, rows)
        index.items = pd.concat([index.items, items[items["modality"] == m][list(META_COLUMNS)]],
                                ignore_index=True)
        log.info("indexed %d %s item(s) with %s", len(vecs), m, fac)
    path = index.save(out or default_index_path(run.path))
    return summary(index, path)


def summary(index: VectorStore, path: Path | str) -> dict[str, Any]:
    return {"index": str(path), "count": len(index), "center": index.center,
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

    from unibind.encoders import EncoderSpec
    from unibind.features.extract import extract
    from unibind.features.manifest import read_manifest, write_manifest

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
