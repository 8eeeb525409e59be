"""The one interface of every vector store (``VectorStore``) and store URIs.

Every store offers the same small interface, so ``Space``, ``index add``, pair expansion and
the server work on either a faiss folder or a Milvus collection."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from unibind.search.parts import SpaceIndexError

DEFAULT_COLLECTION = "unibind"
_SCHEMES = ("milvus", "http", "https")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


class StoreError(SpaceIndexError):
    """A store URI that is malformed, unreachable, locked or holds no unibind index."""


@runtime_checkable
class VectorStore(Protocol):
    """What searching needs from an index, whatever holds the vectors.

    Rows are global item numbers: ``items.iloc[row]`` (or ``lookup([row])``) describes the item.
    """

    path: Any
    meta: dict[str, Any]

    @property
    def items(self) -> pd.DataFrame: ...

    @property
    def center(self) -> bool: ...

    @property
    def modalities(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def pool_sizes(self) -> dict[str, int]: ...

    def lookup(self, rows: np.ndarray) -> pd.DataFrame: ...

    def vector(self, row: int) -> np.ndarray | None: ...

    def search(self, q: np.ndarray, k: int, modalities: list[str] | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]: ...

    def add(self, items: pd.DataFrame, vectors: dict[str, np.ndarray]) -> int: ...

    def save(self, path: Any = None) -> Any: ...

    def part_summary(self) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI: ``kind`` "lite" (``target`` a .db path) or "server" (an address)."""

    text: str
    kind: str
    target: str
    collection: str = DEFAULT_COLLECTION

    def __str__(self) -> str:
        return self.text


def is_store_uri(value: Any) -> bool:
    """True for ``scheme://...`` strings (a store URI), False for folder paths."""
    if isinstance(value, os.PathLike) and re.match(r"^(milvus|https?):/", os.fspath(value)):
        raise StoreError(f"{os.fspath(value)!r} looks like a store URI turned into a path "
                         "(a Path collapses '//'): pass store URIs as strings")
    return isinstance(value, str) and "://" in value


def parse_store_uri(text: str) -> StoreURI:
    """Check and split a store URI; every malformed one is a ``StoreError`` saying what to use."""
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise StoreError(f"unknown store {text!r}: use a folder, milvus://PATH.db (Milvus Lite) "
                         "or http://HOST:19530 (a Milvus server)")
    parts = urlsplit(text)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"collection"})
    if unknown:
        raise StoreError(f"store {text!r}: unknown option(s) {', '.join(unknown)} "
                         "(only ?collection=NAME)")
    collection = (query.get("collection") or [DEFAULT_COLLECTION])[-1]
    if not _NAME.match(collection):
        raise StoreError(f"store {text!r}: collection name {collection!r} must be letters, "
                         "digits and _ (not starting with a digit)")
    if scheme == "milvus":
        path = rest.split("?", 1)[0]
        if not path.endswith(".db") or path in (".db", "/.db"):
            raise StoreError(f"store {text!r}: a Milvus Lite store is a file ending in .db, "
                             "e.g. milvus://runs/demo.db or milvus:///abs/path/demo.db")
        return StoreURI(text, "lite", str(Path(path).expanduser().resolve()), collection)
    if not parts.hostname:
        raise StoreError(f"store {text!r}: no host; use e.g. http://localhost:19530")
    try:
        port = parts.port
    except ValueError as exc:
        raise StoreError(f"store {text!r}: bad port ({exc})") from exc
    address = f"{scheme}://{parts.hostname}:{port or 19530}"
    return StoreURI(text, "server", address, collection)
