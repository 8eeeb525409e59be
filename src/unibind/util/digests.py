"""Content digests (sha256), streamed so that large files never sit in memory."""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike, prefix: bytes = b"") -> str:
    """Hex sha256 of ``prefix`` + the file's bytes."""
    h = hashlib.sha256(prefix)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """The cache key of a media file: its bytes' sha256 (the same file anywhere, one key)."""
    return sha256_file(path, prefix=b"file\0")
