"""The dataset manifest: one table of items (id, modality, label, group, split, path | text).

Parquet is the native format; CSV and JSONL are read too. Paths are relative to the manifest's
folder. ``validate`` names every offending row instead of failing on the first one.

Containment is judged on the path as written (``..`` and absolute paths outside the folder are
refused unless ``allow_outside``), never on where symbolic links point: a data folder linked in
from another disk is inside.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from unibind.errors import InputNotFound, UnibindError
from unibind.modalities import MODALITIES, get_modality, ordered
from unibind.util.atomic import atomic_file

COLUMNS: tuple[str, ...] = ("id", "modality", "label", "group", "split", "path", "text")
REQUIRED: tuple[str, ...] = ("id", "modality", "label")
SPLITS: tuple[str, ...] = ("train", "val", "test")
MAX_LISTED = 20


def lexical(path: str | os.PathLike) -> Path:
    """Absolute and normalised (``..`` and ``.`` removed) without following symbolic links."""
    return Path(os.path.normpath(Path(path).expanduser().absolute()))


def inside(rel: str, root: Path) -> bool:
    """Whether ``rel`` (as written) stays under ``root``: no ``..`` escape, no outside absolute."""
    return lexical(root / rel).is_relative_to(lexical(root))


class ManifestError(UnibindError, ValueError):
    """A manifest that cannot be used; the message names the offending rows."""


class ManifestNotFound(ManifestError, InputNotFound):
    """The manifest file does not exist."""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest table and the folder its relative paths start from."""

    table: pd.DataFrame
    root: Path
    allow_outside: bool = False

    def __len__(self) -> int:
        return len(self.table)

    def resolve(self, rel: str) -> Path:
        """The absolute path of a row's ``path`` (symbolic links kept as written)."""
        return lexical(self.root / rel)

    def digest(self) -> str:
        """A digest of the table's content (not of the media files)."""
        csv = self.table[list(COLUMNS)].to_csv(index=False).encode()
        return hashlib.sha256(csv).hexdigest()

    def modalities(self) -> list[str]:
        return ordered(set(self.table["modality"]))


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    readers = {".parquet": pd.read_parquet,
               ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False),
               ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False)}
    reader = readers.get(".jsonl" if suffix == ".ndjson" else suffix)
    if reader is None:
        raise ManifestError(f"{path}: unsupported manifest format {suffix!r} (parquet, csv, "
                            "jsonl)")
    try:
        return reader(path)
    except Exception as exc:  # corrupt, truncated or mis-named file: one clear message
        raise ManifestError(f"{path}: cannot read the {suffix[1:]} manifest "
                            f"({type(exc).__name__}: {exc})") from exc


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


def validate(table: pd.DataFrame, root: Path, check_files: bool = True,
             allow_outside: bool = False) -> list[str]:
    """Every problem of the manifest as a message naming the rows; empty list when valid.

    ``allow_outside``: accept paths that leave the manifest folder (``..``, absolute)."""
    problems: list[str] = []
    empty_id = table["id"].str.strip() == ""
    if empty_id.any():
        problems.append(f"empty id at line(s) {[int(i) + 1 for i in table.index[empty_id][:20]]}")
    dup = table["id"].duplicated(keep=False) & ~empty_id
    if dup.any():
        problems.append(f"duplicate id: {_rows(table, dup)}")
    unknown = ~table["modality"].isin(list(MODALITIES))
    if unknown.any():
        kinds = sorted(set(table.loc[unknown, "modality"]))
        problems.append(f"unknown modality {kinds} (expected {list(MODALITIES)}): "
                        f"{_rows(table, unknown)}")
    bad_split = (table["split"] != "") & ~table["split"].isin(SPLITS)
    if bad_split.any():
        problems.append(f"split must be one of {list(SPLITS)} or empty: {_rows(table, bad_split)}")
    inline = {m for m in MODALITIES if get_modality(m).inline}
    is_text = table["modality"].isin(inline)
    empty_text = is_text & (table["text"].str.strip() == "") & (table["path"] == "")
    if empty_text.any():
        problems.append(f"empty text: {_rows(table, empty_text)}")
    media = ~is_text & ~unknown
    no_path = media & (table["path"] == "")
    if no_path.any():
        kinds = "/".join(sorted(set(table.loc[no_path, "modality"])))
        problems.append(f"{kinds} item without a path: {_rows(table, no_path)}")
    with_path = (table["path"] != "") & ~unknown
    root_abs = lexical(root)
    escapes, missing = [], []
    for idx in table.index[with_path]:
        rel = table.at[idx, "path"]
        if not allow_outside and not inside(rel, root_abs):
            escapes.append(idx)
        elif check_files and not (root_abs / rel).is_file():
            missing.append(idx)
    if escapes:
        problems.append(f"path escapes the manifest folder {root_abs} (through '..' or an "
                        "absolute path; allow with --allow-outside-paths): "
                        f"{_rows(table, table.index.isin(escapes))}")
    if missing:
        problems.append(f"missing file: {_rows(table, table.index.isin(missing))}")
    return problems


def read_manifest(path: str | os.PathLike, check_files: bool = True,
                  allow_outside: bool = False) -> Manifest:
    """Read and validate a manifest; raise ``ManifestError`` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ManifestNotFound(f"manifest not found: {path}")
    table = normalise(_read_table(path))
    problems = validate(table, path.parent, check_files=check_files, allow_outside=allow_outside)
    if problems:
        raise ManifestError(f"invalid manifest {path}:\n  - " + "\n  - ".join(problems))
    return Manifest(table=table, root=lexical(path.parent), allow_outside=allow_outside)


def write_manifest(table: pd.DataFrame, path: str | os.PathLike,
                   allow_outside: bool = False) -> Path:
    """Validate then write atomically; the format follows the suffix (parquet, csv, jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = normalise(table)
    problems = validate(table, path.parent, allow_outside=allow_outside)
    if problems:
        raise ManifestError(f"refusing to write invalid manifest {path}:\n  - "
                            + "\n  - ".join(problems))
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".jsonl", ".ndjson"):
        raise ManifestError(f"{path}: unsupported manifest format {suffix!r}")
    with atomic_file(path) as fh:  # temp file, fsync, rename
        if suffix == ".parquet":
            table.to_parquet(fh, index=False)
        elif suffix == ".csv":
            fh.write(table.to_csv(index=False).encode("utf-8"))
        else:
            fh.write(table.to_json(orient="records", lines=True, force_ascii=False)
                     .encode("utf-8"))
    return path
