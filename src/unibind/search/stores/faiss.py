"""A search index over every item of a run: one part per modality, metadata, provenance.

Layout of an index folder (default ``RUN/index``)::

    index.json            provenance (encoders, dims, head digest), centring, parts, counts
    items.parquet         one row per indexed item: id, modality, label, group, split, path, text
    vectors.safetensors   {modality: float32 [n_m, D]} and {"rows.<modality>": int64 global rows}
    <modality>.faiss      approximate parts only (faiss's own file format)

Each modality is its own part, so a search restricted to some modalities is exactly the
filtered search, and mixed searches can be merged per modality (``search.merge``). A part
is ``Flat`` (exact, ``search.knn``) or any faiss factory string (HNSW, IVF-PQ, SQ...).
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

from unibind.modalities import MODALITIES
from unibind.search.parts import (
    Part,
    SpaceIndexError,
    additions,
    choose_factory,
    wanted_modalities,
)
from unibind.util.atomic import atomic_folder
from unibind.util.jsonio import read_artifact_meta, write_json_atomic

log = logging.getLogger(__name__)

FORMAT = 1
DEFAULT_BUDGET_GB = 4.0
META_COLUMNS = ("id", "modality", "label", "group", "split", "path", "text")


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


def create_faiss_index(path: str | os.PathLike, meta: dict[str, Any], items: pd.DataFrame,
                       vectors: dict[str, np.ndarray], factory: str | None = None) -> SpaceIndex:
    """Write a faiss index folder at ``path`` holding ``items`` and their unit ``vectors``
    (one part per modality; ``factory`` or one chosen from size and the memory budget)."""
    index = SpaceIndex(path=None, meta=meta, items=items.iloc[:0][list(META_COLUMNS)], parts={})
    for m, vecs in vectors.items():
        rows = np.arange(len(index.items), len(index.items) + len(vecs))
        fac = factory or choose_factory(len(vecs), vecs.shape[1], _budget(meta))
        index.parts[m] = Part.build(fac, vecs, rows)
        index.items = pd.concat([index.items, items[items["modality"] == m][list(META_COLUMNS)]],
                                ignore_index=True)
        log.info("indexed %d %s item(s) with %s", len(vecs), m, fac)
    index.save(path)
    return index


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


