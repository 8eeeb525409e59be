"""The dataset manifest: one table of items (id, modality, label, group, split, path | text).

Parquet is the native format; CSV and JSONL are read too. Paths are relative to the manifest's
folder. ``validate`` names every offending row instead of failing on the first one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unibind.modalities import MODALITIES

COLUMNS: tuple[str, ...] = ("id", "modality", "label", "group", "split", "path", "text")
REQUIRED: tuple[str, ...] = ("id", "modality", "label")
SPLITS: tuple[str, ...] = ("train", "val", "test")
MAX_LISTED = 20


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the offending rows."""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest table and the folder its relative paths start from."""

    table: pd.DataFrame
    root: Path

    def __len__(self) -> int:
        return len(self.table)

    def resolve(self, rel: str) -> Path:
        return (self.root / rel).resolve()

    def digest(self) -> str:
        """A digest of the table's content (not of the media files)."""
        csv = self.table[list(COLUMNS)].to_csv(index=False).encode()
        return hashlib.sha256(csv).hexdigest()

    def modalities(self) -> list[str]:
        present = set(self.table["modality"])
        return [m for m in MODALITIES if m in present]


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, dtype=False)
    raise ManifestError(f"{path}: unsupported manifest format {suffix!r} (parquet, csv, jsonl)")


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Add missing optional columns and turn missing values into empty strings."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ManifestError(
            f"manifest lacks required column(s) {missing}; has {list(table.columns)}")
    out = pd.DataFrame(index=range(len(table)))
    for col in COLUMNS:
        if col in table.columns:
            values = table[col].reset_index(drop=True)
            out[col] = values.where(values.notna(), "").astype(str)
        else:
            out[col] = ""
    extra = [c for c in table.columns if c not in COLUMNS]
    for col in extra:  # keep user columns (e.g. source URL) untouched
        out[col] = table[col].reset_index(drop=True)
    return out


def _rows(table: pd.DataFrame, mask: pd.Series) -> str:
    bad = table.loc[mask, "id"].tolist()
    shown = ", ".join(repr(i) for i in bad[:MAX_LISTED])
    more = f" (+{len(bad) - MAX_LISTED} more)" if len(bad) > MAX_LISTED else ""
    return f"{len(bad)} row(s): {shown}{more}"


def validate(table: pd.DataFrame, root: Path, check_files: bool = True) -> list[str]:
    """Every problem of the manifest as a message naming the rows; empty list when valid."""
    problems: list[str] = []
    empty_id = table["id"].str.strip() == ""
    if empty_id.any():
        problems.append(f"empty id at line(s) {[int(i) + 1 for i in table.index[empty_id][:20]]}")
    dup = table["id"].duplicated(keep=False) & ~empty_id
    if dup.any():
        problems.append(f"duplicate id: {_rows(table, dup)}")
    unknown = ~table["modality"].isin(MODALITIES)
    if unknown.any():
        kinds = sorted(set(table.loc[unknown, "modality"]))
        problems.append(f"unknown modality {kinds} (expected {list(MODALITIES)}): "
                        f"{_rows(table, unknown)}")
    bad_split = (table["split"] != "") & ~table["split"].isin(SPLITS)
    if bad_split.any():
        problems.append(f"split must be one of {list(SPLITS)} or empty: {_rows(table, bad_split)}")
    is_text = table["modality"] == "text"
    empty_text = is_text & (table["text"].str.strip() == "") & (table["path"] == "")
    if empty_text.any():
        problems.append(f"empty text: {_rows(table, empty_text)}")
    media = ~is_text & ~unknown
    no_path = media & (table["path"] == "")
    if no_path.any():
        problems.append(f"image/audio item without a path: {_rows(table, no_path)}")
    with_path = (table["path"] != "") & ~unknown
    root_resolved = root.resolve()
    escapes, missing = [], []
    for idx in table.index[with_path]:
        rel = table.at[idx, "path"]
        target = (root_resolved / rel).resolve()
        if os.path.isabs(rel) or not target.is_relative_to(root_resolved):
            escapes.append(idx)
        elif check_files and not target.is_file():
            missing.append(idx)
    if escapes:
        problems.append(f"path escapes the manifest folder {root_resolved}: "
                        f"{_rows(table, table.index.isin(escapes))}")
    if missing:
        problems.append(f"missing file: {_rows(table, table.index.isin(missing))}")
    return problems


def read_manifest(path: str | os.PathLike, check_files: bool = True) -> Manifest:
    """Read and validate a manifest; raise ``ManifestError`` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    table = normalise(_read_table(path))
    problems = validate(table, path.parent, check_files=check_files)
    if problems:
        raise ManifestError(f"invalid manifest {path}:\n  - " + "\n  - ".join(problems))
    return Manifest(table=table, root=path.parent.resolve())


def write_manifest(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate then write atomically; the format follows the suffix (parquet, csv, jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = normalise(table)
    problems = validate(table, path.parent)
    if problems:
        raise ManifestError(f"refusing to write invalid manifest {path}:\n  - "
                            + "\n  - ".join(problems))
    tmp = path.with_name(f".{path.name}.tmp")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table.to_parquet(tmp, index=False)
    elif suffix == ".csv":
        table.to_csv(tmp, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        table.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        raise ManifestError(f"{path}: unsupported manifest format {suffix!r}")
    os.replace(tmp, path)
    return path
