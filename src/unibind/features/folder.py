"""A feature set on disk: per-modality float32 matrices plus the item table that indexes them.

Layout of a features folder::

    features.json             encoder specs + identities + dims, manifest digest, counts
    items.parquet             manifest rows that were embedded, with ``row`` = row in its matrix
    embeddings.safetensors    {modality: float32 [n_modality, dim_modality]}; a modality embedded
                              by several encoders also has one matrix per view, ``text@clip``,
                              ``text@clap`` (rows as ``text``, which is the profile's main view)
    errors.jsonl              items that failed ({id, path, reason}), one JSON object per line

This module imports no encoder: later stages read features only through it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from unibind.errors import UnibindError
from unibind.modalities import MODALITIES
from unibind.util.atomic import atomic_folder
from unibind.util.jsonio import read_artifact_meta, write_json_atomic

FORMAT_VERSION = 1
VIEW_SEP = "@"  # "text@clip": the text items embedded by a second encoder


class FeaturesError(UnibindError, ValueError):
    """A features folder that is missing, incomplete or inconsistent."""


@dataclass
class Features:
    """Embedded items of one manifest; ``arrays[m][items.row]`` is the vector of an item."""

    items: pd.DataFrame
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.arrays]

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(a.shape[1]) for m, a in self.arrays.items()}

    @property
    def views(self) -> dict[str, list[str]]:
        """``{modality: [view names]}`` of matrices stored as ``modality@view``."""
        out: dict[str, list[str]] = {}
        for key in self.arrays:
            if VIEW_SEP in key:
                m, view = key.split(VIEW_SEP, 1)
                out.setdefault(m, []).append(view)
        return {m: sorted(v) for m, v in out.items()}

    def with_views(self, views: dict[str, str] | None) -> Features:
        """A copy whose ``modality`` matrix is the view named in ``views`` (``{"text": "clip"}``);
        the view's encoder entry becomes the modality's. ``None``/empty: ``self``."""
        if not views:
            return self
        arrays, encoders = dict(self.arrays), dict(self.meta.get("encoders", {}))
        for m, view in views.items():
            key = f"{m}{VIEW_SEP}{view}"
            if key not in self.arrays:
                raise FeaturesError(f"features {self.path or ''} hold no {key!r} matrix (views: "
                                    f"{self.views.get(m, [])}); extract with a profile that "
                                    "embeds it, e.g. --profile aligned")
            arrays[m] = self.arrays[key]
            entry = self.meta.get("views", {}).get(key)
            if entry:
                encoders[m] = entry
        return Features(items=self.items, arrays=arrays,
                        meta={**self.meta, "encoders": encoders}, path=self.path)

    def by_modality(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """``{modality: (ids, matrix)}`` with ids in matrix row order."""
        out = {}
        for m in self.modalities:
            rows = self.items[self.items["modality"] == m].sort_values("row")
            out[m] = (rows["id"].tolist(), self.arrays[m][rows["row"].to_numpy()])
        return out

    @property
    def manifest_path(self) -> Path | None:
        """The manifest the features were extracted from (its folder holds the media), if
        recorded; relative media paths resolve against its folder."""
        if self.path is None or not self.meta.get("manifest"):
            return None
        return (Path(self.path) / self.meta["manifest"]).resolve()

    def table(self, modality: str) -> pd.DataFrame:
        """Items of one modality, sorted by matrix row."""
        rows = self.items[self.items["modality"] == modality]
        return rows.sort_values("row").reset_index(drop=True)


def save_features(out: str | os.PathLike, items: pd.DataFrame, arrays: dict[str, np.ndarray],
                  meta: dict[str, Any], errors: list[dict[str, str]] | None = None) -> Path:
    """Write a features folder atomically (built beside ``out``, then swapped in)."""
    out = Path(out)
    _check_consistent(items, arrays, out)
    with atomic_folder(out) as tmp:
        _write_into(tmp, items, arrays, meta, errors)
    return out


def _write_into(tmp: Path, items: pd.DataFrame, arrays: dict[str, np.ndarray],
                meta: dict[str, Any], errors: list[dict[str, str]] | None) -> None:
    save_file({m: np.ascontiguousarray(a, dtype=np.float32) for m, a in arrays.items()},
              str(tmp / "embeddings.safetensors"))
    items.reset_index(drop=True).to_parquet(tmp / "items.parquet", index=False)
    with open(tmp / "errors.jsonl", "w") as fh:
        for err in errors or []:
            fh.write(json.dumps(err) + "\n")
    write_json_atomic(tmp / "features.json", {"format": FORMAT_VERSION, **meta})


def _check_consistent(items: pd.DataFrame, arrays: dict[str, np.ndarray], where: Path) -> None:
    for key in set(items["modality"]) | set(arrays):
        m = key.split(VIEW_SEP, 1)[0]
        n_items = int((items["modality"] == m).sum())
        n_rows = 0 if key not in arrays else arrays[key].shape[0]
        if n_items != n_rows:
            raise FeaturesError(f"{where}: {key} has {n_items} items but {n_rows} vectors")
        if key != m:
            continue
        if n_items:
            rows = np.sort(items.loc[items["modality"] == m, "row"].to_numpy())
            if not np.array_equal(rows, np.arange(n_items)):
                raise FeaturesError(f"{where}: {m} rows are not a permutation of 0..{n_items - 1}")


def resolve_encoder_sources(encoders: dict[str, Any], base: Path) -> dict[str, Any]:
    """Encoder entries whose spec ``source`` is a relative folder (e.g. fine-tuned encoders stored
    inside a run) resolved against ``base``, so that the folder holding them can be moved."""
    out = {}
    for m, entry in encoders.items():
        source = (entry.get("spec") or {}).get("source")
        if source and not os.path.isabs(source) and (base / source).exists():
            entry = {**entry, "spec": {**entry["spec"], "source": str((base / source).resolve())}}
        out[m] = entry
    return out


def load_features(path: str | os.PathLike) -> Features:
    """Read a features folder written by ``save_features`` (e.g. by ``unibind extract``)."""
    path = Path(path)
    meta = read_artifact_meta(path, ["features.json", "items.parquet", "embeddings.safetensors"],
                              FeaturesError, "a features", "create one with `unibind extract`")
    meta["encoders"] = resolve_encoder_sources(meta.get("encoders", {}), path)
    if meta.get("views"):
        meta["views"] = resolve_encoder_sources(meta["views"], path)
    if meta.get("format") != FORMAT_VERSION:
        raise FeaturesError(f"{path}: features format {meta.get('format')} != {FORMAT_VERSION}")
    try:
        items = pd.read_parquet(path / "items.parquet")
        arrays = load_file(str(path / "embeddings.safetensors"))
    except Exception as exc:  # truncated or foreign files: name them, no traceback
        raise FeaturesError(f"{path}: damaged features folder ({type(exc).__name__}: {exc}); "
                            "re-create it with `unibind extract`") from exc
    _check_consistent(items, arrays, path)
    return Features(items=items, arrays=arrays, meta=meta, path=path)


def read_errors(path: str | os.PathLike) -> list[dict[str, str]]:
    """The failed items recorded in a features folder's ``errors.jsonl``."""
    file = Path(path) / "errors.jsonl"
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def features_from_arrays(arrays: dict[str, np.ndarray], labels: dict[str, list[str]],
                         groups: dict[str, list[str]] | None = None,
                         splits: dict[str, list[str]] | None = None,
                         meta: dict[str, Any] | None = None) -> Features:
    """Build an in-memory ``Features`` from matrices (synthetic data, tests, benchmarks)."""
    rows = []
    for m, mat in arrays.items():
        for i in range(mat.shape[0]):
            rows.append({"id": f"{m}-{i}", "modality": m, "label": labels[m][i],
                         "group": (groups or {}).get(m, [""] * mat.shape[0])[i],
                         "split": (splits or {}).get(m, [""] * mat.shape[0])[i],
                         "path": "", "text": "", "row": i})
    items = pd.DataFrame(rows)
    default_meta = {"encoders": {m: {"name": f"synthetic-{m}", "dim": int(a.shape[1])}
                                 for m, a in arrays.items()}}
    return Features(items=items, arrays={m: a.astype(np.float32) for m, a in arrays.items()},
                    meta={**default_meta, **(meta or {})})


def data_digest(features: Features) -> str:
    """sha256 over the item table (id, modality, label, group, split, row) and every matrix."""
    h = hashlib.sha256()
    cols = ["id", "modality", "label", "group", "split", "row"]
    h.update(features.items[cols].to_csv(index=False).encode())
    for m in sorted(features.arrays):
        a = np.ascontiguousarray(features.arrays[m], dtype=np.float32)
        h.update(f"{m}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
