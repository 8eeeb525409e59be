"""Where an index lives: a folder of faiss files (``faiss``, the default) or a Milvus
collection (``milvus``), both behind one interface (``base.VectorStore``). A store is named by a
path (an index folder) or a URI:

    milvus://PATH.db[?collection=NAME]            Milvus Lite: embedded, one local file
    http(s)://HOST:19530[?collection=NAME]        a Milvus standalone or cluster server

Milvus is optional (``pip install 'unibind[milvus]'``); it is imported only when a URI is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from unibind.search.stores.base import (
    DEFAULT_COLLECTION,
    StoreError,
    StoreURI,
    VectorStore,
    is_store_uri,
    parse_store_uri,
)

__all__ = ["DEFAULT_COLLECTION", "StoreError", "StoreURI", "VectorStore", "is_store_uri",
           "parse_store_uri", "open_store", "create_store"]


def open_store(uri: str | StoreURI) -> VectorStore:
    """Open the index held in a store URI (provenance is checked by ``open_index``)."""
    from unibind.search.stores.milvus import MilvusIndex

    return MilvusIndex.open(uri if isinstance(uri, StoreURI) else parse_store_uri(uri))


def create_store(uri: str | StoreURI, meta: dict[str, Any], items: pd.DataFrame,
                 vectors: dict[str, np.ndarray], factory: str | None = None) -> VectorStore:
    """Write a run's items and unit vectors into a store URI (replacing what it held)."""
    from unibind.search.stores.milvus import MilvusIndex

    target = uri if isinstance(uri, StoreURI) else parse_store_uri(uri)
    return MilvusIndex.create(target, meta, items, vectors, factory)
