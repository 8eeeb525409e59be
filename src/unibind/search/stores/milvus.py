"""A run's index in a Milvus collection (Milvus Lite file or Milvus server; one client API).

One row per item: ``row`` (the global item number, primary key), ``vector`` (the unit vector
in the run's space) and the item's metadata (id, modality, label, group, split, path, text) as
scalar fields. The index's ``meta`` (provenance: head digest, encoder fingerprints, dims;
centring; counts) is stored as JSON in the collection's properties, so ``open_index`` refuses a
collection built from another run exactly as it refuses a faiss folder.

Searches run in the store: one search per target modality with the filter
``modality == "<m>"``, merged by ``unibind.search.merge`` exactly as the faiss parts are. With the
default ``FLAT`` index the results equal faiss ``Flat`` (tested); other Milvus index types
(``IVF_FLAT``, ``HNSW``, ``IVF_PQ``, ``DISKANN``, ``GPU_CAGRA`` on a server) trade recall for
speed. Milvus Lite lets one process at a time open a file; serve several processes from a
Milvus server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unibind.modalities import MODALITIES
from unibind.search.parts import additions, wanted_modalities
from unibind.search.stores.base import StoreError, StoreURI

log = logging.getLogger(__name__)

META_KEY = "unibind.meta"
EXACT = "FLAT"
INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "DISKANN", "AUTOINDEX",
               "GPU_CAGRA", "GPU_IVF_FLAT", "GPU_IVF_PQ")
# VARCHAR limits (bytes, as Milvus counts them); longer values are refused naming the item
FIELD_BYTES = {"id": 1024, "modality": 64, "label": 1024, "group": 1024, "split": 64,
               "path": 4096, "text": 65535}
INSERT_BATCH = 2000
FETCH_BATCH = 10000
TIE_MARGIN = 16  # extra hits fetched so that ties at the k-th place resolve by row
MAX_TOPK = 16384  # Milvus's largest limit

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise StoreError("Milvus stores need pymilvus (and milvus-lite for milvus:// files): "
                         "pip install 'unibind[milvus]'") from exc
    return pymilvus


@contextlib.contextmanager
def _translate(uri: StoreURI, action: str) -> Iterator[None]:
    """pymilvus errors -> ``StoreError`` naming the store and what was being done."""
    pymilvus = _pymilvus()
    try:
        yield
    except pymilvus.exceptions.MilvusException as exc:
        raise StoreError(f"Milvus store {uri}: {action} failed: {_reason(exc)}") from exc


def _reason(exc: Any) -> str:
    return str(getattr(exc, "message", None) or exc)


def _lite_servers() -> dict[str, Any]:
    """Milvus Lite's in-process servers by file (each holds its file's lock)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError as exc:
        raise StoreError("milvus:// stores need milvus-lite: pip install 'unibind[milvus]'"
                         ) from exc
    return getattr(server_manager_instance, "_servers", {})


def _lite_locked(path: str) -> bool:
    """True when another process holds Milvus Lite's lock on ``path`` (checked before
    connecting, so that Milvus Lite does not log a traceback for it)."""
    import fcntl

    lock = Path(path) / "LOCK"
    if not lock.is_file() or os.path.abspath(path) in _lite_servers():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def client(uri: StoreURI, create: bool = False) -> Any:
    """One ``MilvusClient`` per store per process (thread-safe; reused across opens)."""
    pymilvus = _pymilvus()
    with _clients_lock:
        if uri.target in _clients:
            return _clients[uri.target]
        if uri.kind == "lite":
            path = Path(uri.target)
            if not create and not path.exists():
                raise StoreError(f"no Milvus Lite store at {path}; create it with "
                                 f"`unibind index RUN --store {uri}`")
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            if _lite_locked(uri.target):
                raise StoreError(f"Milvus Lite store {uri.target} is open in another process "
                                 "(Milvus Lite allows one process per file): stop that process, "
                                 "or put the index on a Milvus server (http://HOST:19530) to "
                                 "share it")
        try:
            token = os.environ.get("UNIBIND_MILVUS_TOKEN", "") if uri.kind == "server" else ""
            made = pymilvus.MilvusClient(uri.target, token=token, timeout=10)
        except pymilvus.exceptions.MilvusException as exc:
            what = "open Milvus Lite file" if uri.kind == "lite" else "reach Milvus server"
            raise StoreError(f"cannot {what} {uri.target}: {_reason(exc)}") from exc
        _clients[uri.target] = made
        return made


def close_clients() -> None:
    """Close every cached client and stop this process's Milvus Lite servers (which releases
    their files for other processes)."""
    with _clients_lock:
        for target, made in _clients.items():
            with contextlib.suppress(Exception):
                made.close()
            if not target.startswith(("http://", "https://")):
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(target)
        _clients.clear()


def _index_params(pymilvus: Any, milvus: Any, index_type: str, n: int) -> tuple[Any, dict]:
    """(index params for create, search params) for one Milvus index type."""
    params: dict[str, Any] = {}
    search: dict[str, Any] = {}
    nlist = int(2 ** round(np.log2(max(4 * np.sqrt(max(n, 1)), 16))))
    if index_type in ("IVF_FLAT", "IVF_SQ8", "IVF_PQ", "GPU_IVF_FLAT", "GPU_IVF_PQ"):
        params["nlist"] = nlist
        search["nprobe"] = min(nlist, 64)
    if index_type.endswith("IVF_PQ"):
        params.update(m=32, nbits=8)
    if index_type == "HNSW":
        params.update(M=32, efConstruction=200)
        search["ef"] = 192
    if index_type == "DISKANN":
        search["search_list"] = 192
    ip = milvus.prepare_index_params()
    ip.add_index("vector", index_type=index_type, metric_type="IP", params=params)
    return ip, search


def _check_lengths(items: pd.DataFrame) -> None:
    for col, limit in FIELD_BYTES.items():
        sizes = items[col].astype(str).map(lambda s: len(s.encode("utf-8")))
        over = np.flatnonzero(sizes.to_numpy() > limit)
        if len(over):
            row = items.iloc[int(over[0])]
            raise StoreError(f"item {row['id']!r}: its {col} has {int(sizes.iloc[over[0]])} "
                             f"bytes, over the Milvus field limit of {limit} "
                             f"({len(over)} item(s) over)")


class MilvusIndex:
    """A run's index in one Milvus collection; the same interface as ``SpaceIndex``."""

    def __init__(self, uri: StoreURI, milvus: Any, meta: dict[str, Any]):
        self.uri, self.milvus, self.meta = uri, milvus, meta
        self.path = str(uri)
        self._collection = uri.collection
        self._items: pd.DataFrame | None = None
        self._lock = threading.Lock()

    # -- creating and opening -----------------------------------------------------------------
    @classmethod
    def create(cls, uri: StoreURI, meta: dict[str, Any], items: pd.DataFrame,
               vectors: dict[str, np.ndarray], factory: str | None = None) -> MilvusIndex:
        """Build the collection under a temporary name, then swap it in (a failed build leaves
        the previous collection as it was)."""
        pymilvus = _pymilvus()
        index_type = (factory or EXACT).upper()
        if index_type not in INDEX_TYPES:
            raise StoreError(f"unknown Milvus index type {factory!r}; choose from "
                             f"{', '.join(INDEX_TYPES)}")
        milvus = client(uri, create=True)
        dim = int(meta["provenance"]["embed_dim"])
        n = sum(len(v) for v in vectors.values())
        meta = {**meta, "store": {"uri": str(uri), "collection": uri.collection,
                                  "index_type": index_type}}
        building = f"{uri.collection}__building"
        with _translate(uri, f"creating collection {uri.collection!r}"):
            schema = milvus.create_schema(auto_id=False, enable_dynamic_field=False,
                                          description="unibind index")
            schema.add_field("row", pymilvus.DataType.INT64, is_primary=True)
            schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=dim)
            for col, limit in FIELD_BYTES.items():
                schema.add_field(col, pymilvus.DataType.VARCHAR, max_length=limit)
            index_params, search = _index_params(pymilvus, milvus, index_type, n)
            meta["store"]["search_params"] = search
            if milvus.has_collection(building):
                milvus.drop_collection(building)
            milvus.create_collection(building, schema=schema, index_params=index_params,
                                     properties={META_KEY: json.dumps({**meta, "count": 0})})
        index = cls(uri, milvus, {**meta, "parts": {}, "count": 0})
        index._collection = building
        index._items = items.iloc[:0][list(FIELD_BYTES)].reset_index(drop=True)
        index.add(items, vectors)
        index.save()
        with _translate(uri, f"replacing collection {uri.collection!r}"):
            if milvus.has_collection(uri.collection):
                milvus.drop_collection(uri.collection)
            milvus.rename_collection(building, uri.collection)
            milvus.load_collection(uri.collection)
        index._collection = uri.collection
        return index

    @classmethod
    def open(cls, uri: StoreURI) -> MilvusIndex:
        milvus = client(uri)
        with _translate(uri, f"opening collection {uri.collection!r}"):
            if not milvus.has_collection(uri.collection):
                have = milvus.list_collections()
                raise StoreError(f"Milvus store {uri} has no collection {uri.collection!r} "
                                 f"(it has {', '.join(have) or 'none'}); build it with "
                                 f"`unibind index RUN --store {uri}`")
            props = milvus.describe_collection(uri.collection).get("properties") or {}
            if META_KEY not in props:
                raise StoreError(f"collection {uri.collection!r} in {uri} was not written by "
                                 "unibind (no provenance)")
            milvus.load_collection(uri.collection)
        return cls(uri, milvus, json.loads(props[META_KEY]))

    @property
    def collection(self) -> str:
        return self._collection

    # -- the VectorStore interface ------------------------------------------------------------
    @property
    def center(self) -> bool:
        return bool(self.meta.get("center"))

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if self.meta.get("parts", {}).get(m, {}).get("count")]

    def __len__(self) -> int:
        return int(self.meta.get("count", 0))

    def pool_sizes(self) -> dict[str, int]:
        return {m: int(self.meta["parts"][m]["count"]) for m in self.modalities}

    def part_summary(self) -> dict[str, dict[str, Any]]:
        dim = int(self.meta["provenance"]["embed_dim"])
        return {m: {"factory": f"milvus:{self.meta['store']['index_type']}", "count": n,
                    "bytes_per_vector": float(4 * dim)} for m, n in self.pool_sizes().items()}

    @property
    def items(self) -> pd.DataFrame:
        """Every item's metadata in row order (fetched from the store once, on first use)."""
        with self._lock:
            if self._items is None:
                self._items = self._fetch_items()
            return self._items

    def _fetch_items(self) -> pd.DataFrame:
        fields = ["row", *FIELD_BYTES]
        rows: list[dict[str, Any]] = []
        with _translate(self.uri, "reading item metadata"):
            it = self.milvus.query_iterator(self.collection, batch_size=FETCH_BATCH,
                                            output_fields=fields)
            try:
                while batch := it.next():
                    rows.extend(batch)
            finally:
                it.close()
        table = pd.DataFrame(rows, columns=fields).sort_values("row")
        if len(table) != len(self) or not np.array_equal(table["row"], np.arange(len(table))):
            raise StoreError(f"Milvus store {self.uri}: collection {self.collection!r} holds "
                             f"{len(table)} rows but its index records {len(self)}")
        return table.drop(columns="row").reset_index(drop=True)

    def vector(self, row: int) -> np.ndarray | None:
        """The stored vector of one item (fetched by primary key)."""
        with _translate(self.uri, "fetching a vector"):
            got = self.milvus.get(self.collection, ids=[int(row)], output_fields=["vector"])
        if not got:
            raise StoreError(f"Milvus store {self.uri}: row {row} is missing")
        return np.asarray(got[0]["vector"], dtype=np.float32)

    def lookup(self, rows: np.ndarray) -> pd.DataFrame:
        """Metadata of some rows, in the given order (fetched by primary key)."""
        rows = [int(r) for r in rows]
        if self._items is not None:
            return self._items.iloc[rows].reset_index(drop=True)
        with _translate(self.uri, "fetching items"):
            got = self.milvus.get(self.collection, ids=rows, output_fields=["row", *FIELD_BYTES])
        by_row = {int(g["row"]): g for g in got}
        missing = [r for r in rows if r not in by_row]
        if missing:
            raise StoreError(f"Milvus store {self.uri}: rows {missing[:5]} are missing")
        return pd.DataFrame([by_row[r] for r in rows], columns=["row", *FIELD_BYTES]
                            ).drop(columns="row")

    def search(self, q: np.ndarray, k: int, modalities: list[str] | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{modality: (scores [nq, k], global rows [nq, k])}``, one filtered search each."""
        q = np.atleast_2d(np.asarray(q, dtype=np.float32))
        wanted = wanted_modalities(modalities, self.modalities)
        params = {"metric_type": "IP", "params": self.meta["store"].get("search_params", {})}
        limit = min(k + TIE_MARGIN, MAX_TOPK)
        out = {}
        for m in wanted:
            scores = np.full((len(q), limit), -np.inf, dtype=np.float32)
            rows = np.full((len(q), limit), np.iinfo(np.int64).max, dtype=np.int64)
            with _translate(self.uri, f"searching {m} items"):
                hits = self.milvus.search(self.collection, data=list(q), limit=limit,
                                          filter=f'modality == "{m}"', output_fields=["row"],
                                          search_params=params)
            for i, found in enumerate(hits):
                for j, hit in enumerate(found):
                    scores[i, j], rows[i, j] = hit["distance"], hit["entity"]["row"]
            # equal scores (duplicate items) rank by row, as the exact index ranks them
            order = np.lexsort((rows, -scores), axis=1)[:, :k]
            scores = np.take_along_axis(scores, order, axis=1)
            rows = np.take_along_axis(rows, order, axis=1)
            out[m] = (scores, np.where(np.isfinite(scores), rows, -1))
        return out

    def add(self, items: pd.DataFrame, vectors: dict[str, np.ndarray]) -> int:
        """Append items (rows of ``items`` per modality, in ``vectors`` row order)."""
        added = 0
        for m, new, vecs in additions(items, vectors, StoreError):
            new = new.assign(**{c: new[c].fillna("").astype(str) if c in new else ""
                                for c in FIELD_BYTES})[list(FIELD_BYTES)]
            _check_lengths(new)
            start = len(self)
            vecs = np.ascontiguousarray(vecs, dtype=np.float32)
            records = new.to_dict("records")
            with _translate(self.uri, f"inserting {m} items"):
                for lo in range(0, len(new), INSERT_BATCH):
                    batch = [{**rec, "row": start + lo + i, "vector": vecs[lo + i]}
                             for i, rec in enumerate(records[lo:lo + INSERT_BATCH])]
                    self.milvus.insert(self.collection, batch)
            part = self.meta.setdefault("parts", {}).setdefault(
                m, {"factory": f"milvus:{self.meta['store']['index_type']}", "count": 0})
            part["count"] += len(new)
            self.meta["count"] = start + len(new)
            with self._lock:
                if self._items is not None:
                    self._items = pd.concat([self._items, new], ignore_index=True)
            added += len(new)
        return added

    def save(self, path: Any = None) -> str:
        """Flush inserted rows and record the index's meta (counts, provenance) in the store."""
        if path not in (None, self.path):
            raise StoreError(f"a Milvus index is saved where it lives ({self.path}), "
                             f"not to {path}")
        with _translate(self.uri, "saving"):
            self.milvus.flush(self.collection)
            self.milvus.alter_collection_properties(
                self.collection, properties={META_KEY: json.dumps(self.meta)})
        return self.path
