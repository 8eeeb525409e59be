"""One part of a search index: the vectors of one modality, exact or in a faiss index.

``choose_factory`` picks the index type from the collection size and a memory budget; ``Part``
builds, searches and extends it, mapping local ids to the index's global rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from unibind.errors import UnibindError
from unibind.modalities import MODALITIES
from unibind.search.knn import ExactKNN

EXACT = "Flat"
EXACT_MAX = 250_000  # above this many vectors per part an approximate index is chosen
DEFAULT_PARAMS = {"efSearch": 192, "nprobe": 48, "k_factor": 32}


class SpaceIndexError(UnibindError, ValueError):
    """An index that is missing or inconsistent."""


def wanted_modalities(modalities: list[str] | None, held: list[str]) -> list[str]:
    """The modalities a search asks for (all held ones by default); ones the index lacks are an
    error naming what it has."""
    wanted = modalities or held
    unknown = [m for m in wanted if m not in held]
    if unknown:
        raise SpaceIndexError(f"the index holds no {', '.join(unknown)} items "
                              f"(it has {', '.join(held) or 'nothing'})")
    return wanted


def additions(items: pd.DataFrame, vectors: dict[str, np.ndarray],
              error: type[SpaceIndexError] = SpaceIndexError
              ) -> Iterator[tuple[str, pd.DataFrame, np.ndarray]]:
    """What an index ``add`` appends, per modality in registry order: the modality's rows of
    ``items`` (renumbered from 0) and their vectors; a count mismatch is an error."""
    for m in MODALITIES:
        if m not in vectors or not len(vectors[m]):
            continue
        new = items[items["modality"] == m].reset_index(drop=True)
        if len(new) != len(vectors[m]):
            raise error(f"{m}: {len(new)} items but {len(vectors[m])} vectors")
        yield m, new, vectors[m]


def choose_factory(n: int, dim: int, budget_bytes: float) -> str:
    """Index type for ``n`` vectors of ``dim`` within a memory budget (autofaiss-style).

    Exact (``Flat``) for small parts; then a full scan of 4-bit PQ codes (SIMD fast-scan) with
    exact re-ranking of the best ``k_factor * k`` (robust even on structureless data, where
    graphs and IVF lose recall; see benchmarks/search.py), re-ranking from 8-bit codes when the
    float vectors do not fit, and IVF-PQ for collections beyond that."""
    m = dim // 2 if dim % 2 == 0 else dim
    codes = m / 2
    if n <= EXACT_MAX and n * dim * 6 <= budget_bytes:
        return EXACT
    if n * (dim * 4 + codes) <= budget_bytes:
        return f"PQ{m}x4fs,RFlat"
    if n * (dim + codes) <= budget_bytes:
        return f"PQ{m}x4fs,Refine(SQ8)"
    nlist = int(2 ** round(np.log2(4 * np.sqrt(n))))
    for sub in (dim // 4, dim // 8, dim // 16, dim // 32):
        if sub >= 1 and dim % sub == 0 and n * (sub + 8) <= budget_bytes:
            return f"IVF{nlist},PQ{sub}"
    raise SpaceIndexError(f"{n} vectors of dim {dim} do not fit a {budget_bytes / 2**30:.2f} GB "
                          "memory budget; raise --memory-budget")


@dataclass
class Part:
    """The vectors of one modality: exact (``ExactKNN``) or a faiss index; global row ids."""

    factory: str
    rows: np.ndarray
    exact: ExactKNN | None = None
    faiss_index: Any = None
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))

    @property
    def ntotal(self) -> int:
        return int(len(self.rows))

    @classmethod
    def build(cls, factory: str, vectors: np.ndarray, rows: np.ndarray) -> Part:
        dim = vectors.shape[1]
        if factory == EXACT:
            exact = ExactKNN(dim)
            exact.add(vectors)
            return cls(factory, rows.astype(np.int64), exact=exact)
        try:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            raise SpaceIndexError(f"faiss cannot build the index factory {factory!r} for dim "
                                  f"{dim} ({first}); e.g. {EXACT}, HNSW32, IVF4096,PQ64") from exc
        if not index.is_trained:
            sample = vectors if len(vectors) <= 200_000 else vectors[
                np.random.default_rng(0).choice(len(vectors), 200_000, replace=False)]
            try:
                index.train(np.ascontiguousarray(sample))
            except RuntimeError as exc:
                raise SpaceIndexError(f"cannot train {factory!r} on {len(vectors)} vectors "
                                      f"({exc}); use a smaller index or --factory {EXACT}"
                                      ) from exc
        _set_build_params(index)
        index.add(np.ascontiguousarray(vectors))
        part = cls(factory, rows.astype(np.int64), faiss_index=index)
        part.apply_params()
        return part

    @classmethod
    def load(cls, vectors: Any, modality: str, info: dict[str, Any], dim: int,
             folder: Path) -> Part:
        """Read one part saved by ``SpaceIndex.save`` (``vectors``: open safetensors file)."""
        rows = vectors.get_tensor(f"rows.{modality}")
        if info["factory"] == EXACT:
            exact = ExactKNN(dim)
            stored = vectors.get_tensor(modality)
            if len(stored):
                exact.add(stored)
            return cls(EXACT, rows, exact=exact, params=info.get("params") or {})
        part = cls(info["factory"], rows,
                   faiss_index=faiss.read_index(str(folder / f"{modality}.faiss")),
                   params={**DEFAULT_PARAMS, **(info.get("params") or {})})
        part.apply_params()
        return part

    def apply_params(self) -> None:
        if self.faiss_index is None:
            return
        hnsw = _hnsw_of(self.faiss_index)
        if hnsw is not None:
            hnsw.efSearch = int(self.params["efSearch"])
        ivf = _ivf_of(self.faiss_index)
        if ivf is not None:
            ivf.nprobe = int(self.params["nprobe"])
        outer = faiss.downcast_index(self.faiss_index)
        if hasattr(outer, "k_factor"):
            outer.k_factor = float(self.params["k_factor"])

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        if self.exact is not None:
            self.exact.add(vectors)
        else:
            self.faiss_index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.rows = np.concatenate([self.rows, rows.astype(np.int64)])

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, global rows); absent results are (-inf, -1)."""
        if self.ntotal == 0:
            return (np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1))
        if self.exact is not None:
            scores, local = self.exact.search(q, k)
        else:  # read-only: one index is searched from many threads at once
            scores, local = self.faiss_index.search(np.ascontiguousarray(q, np.float32), k)
            scores = np.where(local >= 0, scores, -np.inf).astype(np.float32)
        return scores, np.where(local >= 0, self.rows[np.maximum(local, 0)], -1)

    def bytes_per_vector(self) -> float:
        if self.exact is not None:
            return float(self.exact.bytes_per_vector())
        return index_bytes(self.faiss_index) / max(self.ntotal, 1)


def index_bytes(index: Any) -> int:
    """Serialised size of a faiss index (close to its memory use)."""
    return int(faiss.serialize_index(index).size)


def _set_build_params(index: Any) -> None:
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        hnsw.efConstruction = max(hnsw.efConstruction, 80)


def _hnsw_of(index: Any) -> Any:
    index = faiss.downcast_index(index)
    if hasattr(index, "base_index"):  # a refine wrapper
        index = faiss.downcast_index(index.base_index)
    return getattr(index, "hnsw", None)


def _fastscan_of(index: Any) -> Any:
    """The SIMD fast-scan PQ index inside ``index`` (possibly under a refine wrapper)."""
    index = faiss.downcast_index(index)
    if hasattr(index, "base_index"):
        index = faiss.downcast_index(index.base_index)
    return index if hasattr(index, "implem") and hasattr(index, "qbs") else None


def _ivf_of(index: Any) -> Any:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
