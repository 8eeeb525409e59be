"""Content-addressed feature cache: vectors keyed by (encoder fingerprint, item digest).

One folder per encoder fingerprint holds safetensors shards; each shard maps item digests to
vectors. A finished batch becomes one shard, written atomically (temp file + rename), so a run
killed at any point loses at most the batch in flight and never leaves a corrupt shard behind.

Several processes may share one cache: reads hold a shared ``fcntl`` lock on the folder's
``.lock`` file and compaction an exclusive one, so no shard disappears under a reader; a reader
whose shard map is out of date (another process compacted since it opened) rescans the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from unibind.util.atomic import atomic_file
from unibind.util.jsonio import write_json_atomic

log = logging.getLogger(__name__)

COMPACT_ABOVE = 256  # merge shards once a folder holds more than this many


def text_digest(text: str) -> str:
    """The content digest of an inline text item (its cache key part)."""
    return hashlib.sha256(b"text\0" + text.encode("utf-8")).hexdigest()


class FeatureCache:
    """Vectors of one encoder, addressed by item digest."""

    def __init__(self, root: str | os.PathLike, fingerprint: str):
        self.folder = Path(root) / fingerprint[:2] / fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        self._where: dict[str, Path] = {}
        with self._lock(fcntl.LOCK_SH):
            self._scan()

    def _scan(self) -> None:
        """Map every digest to its shard (call with a lock held)."""
        where: dict[str, Path] = {}
        for shard in sorted(self.folder.glob("*.safetensors")):
            try:
                with safe_open(str(shard), framework="numpy") as f:
                    for key in f.keys():
                        where[key] = shard
            except FileNotFoundError:  # put_many of another process is not locked: fine
                continue
            except Exception as exc:  # a foreign or damaged file: skip it, never trust it
                log.warning("ignoring unreadable cache shard %s: %s", shard, exc)
        self._where = where

    @contextlib.contextmanager
    def _lock(self, kind: int) -> Iterator[None]:
        """Shared (readers) or exclusive (compaction) lock between processes."""
        with open(self.folder / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), kind)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def __contains__(self, digest: str) -> bool:
        return digest in self._where

    def __len__(self) -> int:
        return len(self._where)

    def describe(self, info: dict[str, Any]) -> None:
        """Record what produced these vectors (for people browsing the cache)."""
        if not (self.folder / "encoder.json").is_file():
            write_json_atomic(self.folder / "encoder.json", info)

    def get_many(self, digests: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors for the digests present (missing ones are left out)."""
        wanted = [d for d in digests if d in self._where]
        with self._lock(fcntl.LOCK_SH):
            try:
                return self._read(wanted)
            except FileNotFoundError:  # another process compacted: the map is out of date
                self._scan()
                return self._read([d for d in wanted if d in self._where])

    def _read(self, digests: list[str]) -> dict[str, np.ndarray]:
        by_shard: dict[Path, list[str]] = {}
        for d in digests:
            by_shard.setdefault(self._where[d], []).append(d)
        out = {}
        for shard, keys in by_shard.items():
            with safe_open(str(shard), framework="numpy") as f:
                for key in keys:
                    out[key] = f.get_tensor(key)
        return out

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store one batch as one new shard (atomic)."""
        if not vectors:
            return
        shard = self.folder / f"{uuid.uuid4().hex}.safetensors"
        self._write(shard, vectors)
        for key in vectors:
            self._where[key] = shard

    def _write(self, shard: Path, vectors: dict[str, np.ndarray]) -> None:
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}
        with atomic_file(shard) as fh:
            fh.write(save(tensors))

    def compact(self, above: int | None = None) -> None:
        """Merge many small shards into one (new shard first, then old ones removed), holding
        the exclusive lock so that no other process is reading a shard meanwhile."""
        above = COMPACT_ABOVE if above is None else above
        if len(set(self._where.values())) <= above:
            return
        with self._lock(fcntl.LOCK_EX):
            self._scan()  # every shard on disk, other processes' included
            shards = sorted(set(self._where.values()))
            if len(shards) <= above:
                return
            merged = self._read(list(self._where))
            target = self.folder / f"{uuid.uuid4().hex}.safetensors"
            self._write(target, merged)
            for shard in shards:
                shard.unlink(missing_ok=True)
            self._where = dict.fromkeys(merged, target)
        log.info("compacted %d shards into %s", len(shards), target.name)
