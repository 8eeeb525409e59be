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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
from safetensors import safe_open
from safetensors.numpy import save_file

from .atomic import atomic_folder
from .config import MODALITIES, read_json, write_json_atomic
from .features import Features, load_features
from .knn import ExactKNN
from .run import Run

log = logging.getLogger(__name__)

FORMAT = 1
EXACT = "Flat"
EXACT_MAX = 250_000  # above this many vectors per part an approximate index is chosen
DEFAULT_BUDGET_GB = 4.0
DEFAULT_PARAMS = {"efSearch": 192, "nprobe": 48, "k_factor": 32}
META_COLUMNS = ("id", "modality", "label", "group", "split", "path", "text")


class SpaceIndexError(ValueError):
    """An index that is missing or inconsistent."""


class IndexMismatch(SpaceIndexError):
    """An index (or a query encoder) that does not belong to the run it is used with."""


def default_index_path(run_path: str | os.PathLike) -> Path:
    return Path(run_path) / "index"


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
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
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
        else:
            scan = _fastscan_of(self.faiss_index)
            if scan is not None:  # few queries: split the database over threads instead
                scan.implem = 15 if len(q) < 4 else 0
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

    def search(self, q: np.ndarray, k: int, modalities: list[str] | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{modality: (scores [nq, k], global rows [nq, k])}`` for the chosen modalities."""
        q = np.atleast_2d(np.asarray(q, dtype=np.float32))
        wanted = modalities or self.modalities
        unknown = [m for m in wanted if m not in self.parts]
        if unknown:
            raise SpaceIndexError(f"the index holds no {', '.join(unknown)} items "
                              f"(it has {', '.join(self.modalities) or 'nothing'})")
        return {m: self.parts[m].search(q, k) for m in wanted}

    def add(self, items: pd.DataFrame, vectors: dict[str, np.ndarray]) -> int:
        """Append items (rows of ``items`` per modality, in ``vectors`` row order)."""
        added = 0
        for m in MODALITIES:
            if m not in vectors or not len(vectors[m]):
                continue
            new = items[items["modality"] == m].reset_index(drop=True)
            rows = np.arange(len(self.items), len(self.items) + len(new))
            self.items = pd.concat([self.items, new[list(META_COLUMNS)]], ignore_index=True)
            if m in self.parts:
                self.parts[m].add(vectors[m], rows)
            else:
                factory = choose_factory(len(new), vectors[m].shape[1], _budget(self.meta))
                self.parts[m] = Part.build(factory, vectors[m], rows)
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
    if not (path / "index.json").is_file():
        raise SpaceIndexError(f"{path} is not an index folder (no index.json); "
                          "create one with `unibind index RUN`")
    meta = read_json(path / "index.json")
    if meta.get("format") != FORMAT:
        raise SpaceIndexError(f"{path}: index format {meta.get('format')} != {FORMAT}")
    items = pd.read_parquet(path / "items.parquet")
    parts = {}
    with safe_open(str(path / "vectors.safetensors"), framework="numpy") as fh:
        for m, info in meta.get("parts", {}).items():
            rows = fh.get_tensor(f"rows.{m}")
            if info["factory"] == EXACT:
                exact = ExactKNN(int(meta["provenance"]["embed_dim"]))
                vecs = fh.get_tensor(m)
                if len(vecs):
                    exact.add(vecs)
                parts[m] = Part(EXACT, rows, exact=exact, params=info.get("params") or {})
            else:
                index = faiss.read_index(str(path / f"{m}.faiss"))
                parts[m] = Part(info["factory"], rows, faiss_index=index,
                                params={**DEFAULT_PARAMS, **(info.get("params") or {})})
                parts[m].apply_params()
            if parts[m].ntotal != (items["modality"] == m).sum():
                raise SpaceIndexError(f"{path}: {m} has {parts[m].ntotal} vectors but "
                                  f"{int((items['modality'] == m).sum())} items")
    return SpaceIndex(path=path, meta=meta, items=items, parts=parts)


def item_table(feats: Features) -> pd.DataFrame:
    """Feature items with media paths made absolute (so results can be opened anywhere)."""
    items = feats.items.copy()
    for col in META_COLUMNS:
        if col not in items:
            items[col] = ""
        items[col] = items[col].fillna("").astype(str)
    root = None
    if feats.path is not None and feats.meta.get("manifest"):
        root = (Path(feats.path) / feats.meta["manifest"]).resolve().parent
    if root is not None:
        has = items["path"] != ""
        items.loc[has, "path"] = [str((root / p).resolve()) for p in items.loc[has, "path"]]
    return items


def project_features(run: Run, feats: Features, center: bool
                     ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Items (modalities the run has heads for, in matrix order) and their unit vectors."""
    items, tables, vectors = item_table(feats), [], {}
    for m in MODALITIES:
        if m not in feats.arrays or m not in run.modalities:
            continue
        table = items[items["modality"] == m].sort_values("row")
        vectors[m] = run.project(m, feats.arrays[m][table["row"].to_numpy()], center=center)
        tables.append(table)
    if not tables:
        raise SpaceIndexError(f"features share no modality with the run ({run.modalities})")
    return pd.concat(tables, ignore_index=True), vectors


def build_index(run_path: str | os.PathLike, out: str | os.PathLike | None = None,
                factory: str | None = None, memory_budget_gb: float = DEFAULT_BUDGET_GB,
                center: bool | None = None, features: Features | str | os.PathLike | None = None
                ) -> dict[str, Any]:
    """Project every item of the run's features and index it; returns a summary."""
    run = Run.load(run_path)
    if features is None:
        if run.features_path is None:
            raise SpaceIndexError(f"run {run.path} records no features folder; pass features=")
        features = run.features_path
    feats = features if isinstance(features, Features) else load_features(features)
    if center is None:
        center = bool(run.info.get("search", {}).get("center")) and bool(run.centers)
    items, vectors = project_features(run, feats, center)
    meta = {"format": FORMAT, "run": str(Path(run.path).resolve()), "provenance": provenance(run),
            "center": center, "memory_budget_gb": memory_budget_gb, "metric": "inner_product"}
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


def summary(index: SpaceIndex, path: Path) -> dict[str, Any]:
    return {"index": str(path), "count": len(index), "center": index.center,
            "parts": {m: {"factory": p.factory, "count": p.ntotal,
                          "bytes_per_vector": round(p.bytes_per_vector(), 1)}
                      for m, p in index.parts.items()}}


def open_index(run: Run, path: str | os.PathLike | None = None) -> SpaceIndex:
    """Load the run's index and check that it was built from this run."""
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

    from .encoders import EncoderSpec
    from .extract import extract
    from .manifest import read_manifest, write_manifest

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
            items, vectors = project_features(run, feats, index.center)
    finally:
        part.unlink(missing_ok=True)
    added = index.add(items, vectors)
    path = index.save()
    log.info("added %d item(s) to %s", added, path)
    return {**summary(index, path), "added": added, "skipped": skipped,
            "errors": result.get("errors", [])}
