"""The run's own item files, looked up by id only: thumbnails for images, files for sounds.

An id is a key into the index's item table, never a path: ``../x``, ``%2e%2e``, ``/etc/passwd``
are just ids that are not in the table (404). The file served is the path the index recorded for
that item, nothing else.
"""

from __future__ import annotations

import io
import mimetypes
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd

from unibind.modalities import get_modality
from unibind.serve.limits import ServeError

AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".oga": "audio/ogg", ".mp3": "audio/mpeg", ".m4a": "audio/mp4",
               ".aiff": "audio/aiff", ".aif": "audio/aiff", ".opus": "audio/ogg"}
THUMB_SIZES = (16, 1024)
DEFAULT_THUMB = 256
ECHO = 80  # longest piece of a request echoed back in an answer


def echo(value: str) -> str:
    """``value`` as shown in an error: repr, cut to ``ECHO`` characters."""
    return repr(value) if len(value) <= ECHO else repr(value[:ECHO]) + f"... ({len(value)} chars)"


def data_root(items: pd.DataFrame) -> Path | None:
    """The folder holding every item file (their common parent), or None without files."""
    paths = [str(p) for p in items.get("path", pd.Series(dtype=str)).dropna()
             if str(p) and os.path.isabs(str(p))]
    if not paths:
        return None
    common = Path(os.path.commonpath(paths))
    return common.parent if len(set(paths)) == 1 else common


def public_path(path: str, root: Path | None) -> str:
    """``path`` relative to the data folder (its file name if outside it)."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return Path(path).relative_to(root).as_posix() if root else Path(path).name
    except ValueError:
        return Path(path).name


class ItemTable:
    """id -> item row (and its file) over an index's item table."""

    def __init__(self, items: pd.DataFrame, root: Path | None = None):
        self.items, self.root = items, root
        self.rows = {str(i): n for n, i in enumerate(items["id"])}

    def row(self, item_id: str) -> int:
        n = self.rows.get(item_id)
        if n is None:
            raise ServeError(f"no item with id {echo(item_id)} in this run", status=404)
        return n

    def describe(self, item_id: str) -> dict[str, Any]:
        item = self.items.iloc[self.row(item_id)]
        out = {"id": item_id, "row": self.row(item_id)}
        for col in ("modality", "label", "group", "split"):
            if col in item.index:
                out[col] = _plain(item[col])
        if get_modality(str(item["modality"])).inline:
            out["text"] = str(item["text"])
        else:
            out["path"] = public_path(str(item["path"]), self.root)
        return out

    def file(self, item_id: str) -> tuple[Path, str]:
        """The item's own media file and how it previews (image | audio | none); inline (text)
        items have no file: 404."""
        item = self.items.iloc[self.row(item_id)]
        modality = get_modality(str(item["modality"]))
        if modality.inline or not item["path"]:
            raise ServeError(f"item {echo(item_id)} is a {item['modality']} item without a "
                             "file", status=404)
        path = Path(str(item["path"]))
        if not path.is_file():
            raise ServeError(f"item {echo(item_id)}: its file is missing on the server",
                             status=404)
        return path, modality.preview


def _plain(value: Any) -> Any:
    """numpy scalars -> Python; NaN/None -> None."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value


def audio_type(path: Path) -> str:
    """The content type served for a sound file (by extension)."""
    return AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"


class Thumbnails:
    """JPEG thumbnails of item images, made on first request and kept (LRU, bounded)."""

    def __init__(self, capacity: int = 1024):
        self.capacity = capacity
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item_id: str, path: Path, size: int) -> bytes:
        if not THUMB_SIZES[0] <= size <= THUMB_SIZES[1]:
            raise ServeError(f"size must be between {THUMB_SIZES[0]} and {THUMB_SIZES[1]} "
                             "(0 = the original file)", limit="size", value=list(THUMB_SIZES))
        key = (item_id, size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = make_thumbnail(path, size)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return data


def make_thumbnail(path: Path, size: int) -> bytes:
    """An image file -> JPEG bytes that fit in ``size`` x ``size`` (transparency on white)."""
    from PIL import Image

    from unibind.media.decode import MediaError, load_image

    try:
        image = load_image(path, draft=(size, size), max_side=max(4 * size, 512))
    except MediaError as exc:
        raise ServeError(f"this item's image cannot be shown: {exc}", status=500) from None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
