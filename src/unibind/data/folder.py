"""Build a manifest from ``SRC/<label>/<files>``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from unibind.errors import InputNotFound, UsageError
from unibind.features.manifest import lexical, write_manifest
from unibind.modalities import IMAGE, get_modality, modality_names, modality_of_extension

log = logging.getLogger(__name__)

IMAGE_EXTS = IMAGE.extensions  # kept for callers of the old name


def modality_of(path: Path) -> str | None:
    """The registered modality whose extensions include ``path``'s, if any."""
    return modality_of_extension(path.suffix)


def scan_folder(src: str | os.PathLike, relative_to: str | os.PathLike) -> pd.DataFrame:
    """Rows for every media/text file under ``src/<label>/`` (recursively), paths relative to
    ``relative_to``. Files that share a stem within a label share a ``group``."""
    src, base = lexical(src), lexical(relative_to)  # symbolic links kept as written
    if not src.is_dir():
        raise InputNotFound(f"dataset folder not found: {src}")
    rows, skipped = [], 0
    for label_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        for file in sorted(p for p in label_dir.rglob("*") if p.is_file()):
            modality = modality_of(file)
            if modality is None:
                skipped += 1
                continue
            stem = file.relative_to(label_dir).with_suffix("").as_posix()
            rel_path = os.path.relpath(file, base)
            row = {"id": f"{label_dir.name}/{file.relative_to(label_dir).as_posix()}",
                   "modality": modality, "label": label_dir.name,
                   "group": f"{label_dir.name}/{stem}", "split": "", "path": rel_path, "text": ""}
            if get_modality(modality).inline:
                row["text"] = file.read_text(encoding="utf-8", errors="replace").strip()
                row["path"] = ""
            rows.append(row)
    if skipped:
        log.info("skipped %d file(s) of unknown type under %s", skipped, src)
    if not rows:
        exts = sorted(e for m in modality_names() for e in get_modality(m).extensions)
        raise InputNotFound(f"no files of a known type ({' '.join(exts)}) found under "
                           f"{src}/<label>/")
    return pd.DataFrame(rows)


def build_folder_manifest(src: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Scan ``src`` and write the manifest to ``out`` (default ``src/manifest.parquet``).

    Paths are stored relative to the manifest's folder, which must contain ``src``."""
    if not Path(src).is_dir():
        raise InputNotFound(f"dataset folder not found: {src}")
    out = Path(out) if out else Path(src) / "manifest.parquet"
    if not lexical(src).is_relative_to(lexical(out.parent)):
        raise UsageError(f"the manifest must sit in {src} or a folder above it (its paths may not "
                         f"escape its folder); got --out {out}. Try --out {Path(src) / out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    table = scan_folder(src, out.parent)
    log.info("%d items (%s) from %s", len(table),
             ", ".join(f"{m}: {n}" for m, n in table["modality"].value_counts().items()), src)
    return write_manifest(table, out)
