"""The service's state over one shared ``Space``: searches, item look-ups, run info.

Everything here is synchronous; the HTTP layer runs it in bounded pools (``serve.pools``): text
queries and look-ups in one, uploads (decoded and encoded) in another with a short queue, item
thumbnails in a third. Answers name items by id and by paths relative to the data folder, never
by a server path. Query encoders
are loaded once at start (no lazy-load race); each modality's encoder runs one forward at a time,
concurrent text queries sharing one forward (``serve.batching``); index searches run in parallel.
A query is embedded and searched exactly as ``Space.search`` does it (the same vectors, the same
result dict).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from unibind.encoders.base import ItemError
from unibind.errors import UnibindError
from unibind.media.decode import MediaError, MediaLimits
from unibind.modalities import MODALITIES, get_modality
from unibind.search.merge import MODES
from unibind.search.space import Space, combine_query
from unibind.serve.batching import Batcher
from unibind.serve.limits import Budget, ServeError, ServeLimits, check_upload
from unibind.serve.media import ItemTable, Thumbnails, data_root, public_path
from unibind.serve.pools import Deadline, Pool
from unibind.util.jsonio import read_json

log = logging.getLogger(__name__)

BATCH_INLINE = 32  # most texts per shared forward (media go one by one: their cost is per input)


class Service:
    """One run, its index and query encoders, shared by every request."""

    def __init__(self, space: Space, limits: ServeLimits | None = None, warm: bool = True):
        self.space = space
        self.limits = limits or ServeLimits()
        self.root = data_root(space.index.items)
        self.table = ItemTable(space.index.items, self.root)
        self.thumbs = Thumbnails()
        lim = self.limits
        self.pool = Pool("query", lim.workers, 8 * lim.workers)          # text, similar, items
        self.media = Pool("upload", lim.media_workers, lim.media_queue)  # decode + encode files
        self.files = Pool("thumbnail", 2, 512)                            # the run's own images
        self.embed = {m: Batcher(partial(space.embed, m),
                                 BATCH_INLINE if get_modality(m).inline else 1)
                      for m in space.run.modalities}
        self.encoders: dict[str, str] = {}
        if warm:
            self.warm()

    @classmethod
    def open(cls, run: str | os.PathLike, index: str | os.PathLike | None = None,
             limits: ServeLimits | None = None) -> Service:
        return cls(Space.load(run, index), limits)

    def close(self) -> None:
        for pool in (self.pool, self.media, self.files):
            pool.close()

    def warm(self) -> None:
        """Load every query encoder now, so that no request pays for (or races on) it."""
        for m in self.space.run.modalities:
            try:
                enc = self.space.encoder(m)
                if not get_modality(m).inline and hasattr(enc, "limits"):  # query uploads
                    enc.limits = MediaLimits(self.limits.max_pixels,
                                             self.limits.max_audio_seconds,
                                             self.limits.max_image_side)
                self.encoders[m] = "ready"
            except (UnibindError, OSError, ValueError, ImportError, KeyError) as exc:
                self.encoders[m] = f"unavailable: {_no_paths(str(exc))[:200]}"
                log.warning("%s queries are unavailable: %s", m, exc)

    # -- searching -----------------------------------------------------------------------------
    def search(self, text: list[str], uploads: list[tuple[str, Path, str]], k: int,
               modality: list[str] | None, balance: str | None, via_pairs: int,
               tmp: Path | None = None, deadline: Deadline | None = None) -> dict[str, Any]:
        """A (possibly compositional) query; ``uploads`` are (declared modality or ``any``,
        file, shown name). Headers are checked against the limits and the request's budget
        before anything is decoded; past ``deadline`` the work stops at the next step.

        ``tmp`` (the uploads' folder) is deleted when this returns, whatever happens."""
        deadline = deadline or Deadline(self.limits.timeout_s)
        try:
            files: dict[str, list[str]] = {}
            shown: dict[str, list[str]] = {}
            budget = Budget(self.limits)
            for declared, path, name in uploads:
                deadline.check()
                kind = check_upload(path, declared, budget, name)
                files.setdefault(kind, []).append(str(path))
                shown.setdefault(kind, []).append(name)
            given = {m: v for m, v in (("text", text), *files.items()) if v}
            if not given:
                raise ServeError("give at least one query: text or an uploaded file")
            for m in given:
                self._usable(m)
            embedded = []
            for m, items in given.items():
                deadline.check()
                embedded.append(self.embed[m](items))
            deadline.check()
            q = combine_query(embedded)
            hits = self.space.search_hits(q[None], k, modality, balance, list(given), via_pairs)
            query = {m: v for m, v in (("text", text), *shown.items()) if v}
            return self.public(self.space.result(query, k, modality, hits.mode, hits.rows[0],
                                                 hits.scores[0], **hits.extra()))
        except (ItemError, MediaError) as exc:
            raise ServeError(f"cannot use the query: {getattr(exc, 'reason', exc)}") from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def public(self, result: dict[str, Any]) -> dict[str, Any]:
        """A result with item paths relative to the data folder."""
        for r in result["results"]:
            if "path" in r:
                r["path"] = public_path(r["path"], self.root)
        return result

    def similar(self, item_id: str, k: int, modality: list[str] | None, balance: str | None,
                via_pairs: int) -> dict[str, Any]:
        """Items nearest to an indexed item (its own index vector is the query)."""
        row = self.table.row(item_id)
        qm = str(self.space.index.items.iloc[row]["modality"])
        q = self.item_vector(row, qm)
        hits = self.space.search_hits(q[None], k + 1, modality, balance, [qm], via_pairs)
        keep = hits.rows[0] != row
        return self.public(self.space.result({"item": [item_id]}, k, modality, hits.mode,
                                             hits.rows[0][keep][:k], hits.scores[0][keep][:k],
                                             **hits.extra()))

    def item_vector(self, row: int, modality: str) -> np.ndarray:
        """The item's stored vector, else (an index that keeps none) its raw input re-embedded."""
        vec = self.space.index.vector(row)
        if vec is not None:
            return vec
        item = self.space.index.lookup(np.array([row])).iloc[0]
        raw = item["text"] if get_modality(modality).inline else item["path"]
        return self.embed[modality]([raw])[0]

    def _usable(self, modality: str) -> None:
        state = self.encoders.get(modality)
        if modality not in self.space.run.modalities:
            raise ServeError(f"this run has no {modality} head; it embeds "
                             f"{', '.join(self.space.run.modalities)}")
        if state is not None and state != "ready":
            raise ServeError(f"{modality} queries: the encoder is {state}", status=503)

    # -- describing ----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        run, index = self.space.run, self.space.index
        counts = index.items["modality"].value_counts()
        metrics_path = Path(run.path) / "metrics.json"
        metrics = read_json(metrics_path) if metrics_path.is_file() else {}
        headline = {key: metrics[key] for key in ("split", "cross_modal", "search")
                    if key in metrics}
        encoders = {}
        for m, enc in run.encoders.items():
            spec = enc.get("spec", {}) if isinstance(enc, dict) else {}
            source = str(spec.get("source", ""))
            if os.path.isabs(source):  # a model folder on the server: its name only
                source = Path(source).name
            encoders[m] = {"backend": spec.get("backend"), "source": source,
                           "fingerprint": str(enc.get("fingerprint", ""))[:12],
                           "status": self.encoders.get(m, "not loaded")}
        name = "/".join(Path(run.path).resolve().parts[-2:])
        return {"run": Path(run.path).name, "name": name,
                "modalities": run.modalities, "reach": run.reach, "embed_dim": run.embed_dim,
                "items": {m: int(counts.get(m, 0)) for m in MODALITIES if m in counts},
                "previews": {m: get_modality(m).preview for m in MODALITIES if m in counts},
                "count": len(index), "center": bool(index.center),
                "encoders": encoders, "metrics": headline,
                "balance": {"default": self.space.default_mode(), "modes": list(MODES)},
                "limits": self.limits.as_dict()}


def _no_paths(text: str) -> str:
    """``text`` with absolute paths cut to their last part (answers never show server paths)."""
    return re.sub(r"(?<![\w.:/])(/[^\s'\":,/]+)+/?", lambda m: Path(m.group(0)).name, text)
