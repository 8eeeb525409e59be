"""Build a manifest from any folder tree of images, sounds and ``.txt`` captions.

``labels="none"``: every file under SRC (recursively) is an item without a label; files that share
a stem in the same folder (``beach.jpg``, ``beach.wav``, ``beach.txt``) share a ``group``.
``labels="dirs"``: SRC/<label>/<files>, the top-level subfolder names the label (files directly
in SRC are skipped); groups as above, within a label.

Hidden files and folders (``.name``) and manifests (``.parquet``, what this module writes) are
not items and not counted; every other file of no known type is named in a warning (the first
``SHOW_SKIPPED``) and returned in ``table.attrs["skipped"]``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from unibind.data.manifest import lexical, write_manifest
from unibind.errors import InputNotFound, UsageError
from unibind.modalities import IMAGE, get_modality, modality_names, modality_of_extension

log = logging.getLogger(__name__)

IMAGE_EXTS = IMAGE.extensions  # kept for callers of the old name
LABEL_MODES = ("none", "dirs")
SHOW_SKIPPED = 20
NOT_ITEMS = frozenset({".parquet"})  # manifests: ours, never data
#: extensions no kept decoder reads, with what to do instead
UNSUPPORTED = {ext: "AAC/MP4 audio is not decoded (no bundled decoder): convert it, e.g. "
                    "`ffmpeg -i in.m4a out.ogg`" for ext in (".m4a", ".mp4", ".aac", ".m4b")}


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def skipped_message(skipped: list[str], src: str | os.PathLike) -> str:
    """``skipped N file(s) of unknown type under SRC: a.m4a, b.xyz, ... (and N more)`` plus a
    hint for each unsupported kind met."""
    shown = ", ".join(skipped[:SHOW_SKIPPED])
    more = f" (and {len(skipped) - SHOW_SKIPPED} more)" if len(skipped) > SHOW_SKIPPED else ""
    hints = sorted({UNSUPPORTED[e] for e in (Path(f).suffix.lower() for f in skipped)
                    if e in UNSUPPORTED})
    return (f"skipped {len(skipped)} file(s) of unknown type under {src}: {shown}{more}"
            + "".join(f"; {h}" for h in hints))


def modality_of(path: Path) -> str | None:
    """The registered modality whose extensions include ``path``'s, if any."""
    return modality_of_extension(path.suffix)


def _row(file: Path, base: Path, root: Path, label: str) -> dict[str, str]:
    rel = file.relative_to(root).as_posix()
    stem = file.relative_to(root).with_suffix("").as_posix()
    prefix = f"{label}/" if label else ""
    modality = modality_of(file) or ""
    row = {"id": prefix + rel, "modality": modality, "label": label, "group": prefix + stem,
           "split": "", "path": os.path.relpath(file, base), "text": ""}
    if get_modality(modality).inline:
        row["text"] = file.read_text(encoding="utf-8", errors="replace").strip()
        row["path"] = ""
    return row


def scan_folder(src: str | os.PathLike, relative_to: str | os.PathLike,
                labels: str = "dirs") -> pd.DataFrame:
    """Rows for every media/text file under ``src`` (see the module doc for ``labels``), paths
    relative to ``relative_to``. Files that share a stem in one folder share a ``group``."""
    if labels not in LABEL_MODES:
        raise UsageError(f"labels {labels!r}: choose from {', '.join(LABEL_MODES)}")
    src, base = lexical(src), lexical(relative_to)  # symbolic links kept as written
    if not src.is_dir():
        raise InputNotFound(f"dataset folder not found: {src}")
    roots = ([(p, p.name) for p in sorted(src.iterdir()) if p.is_dir()] if labels == "dirs"
             else [(src, "")])
    rows, skipped = [], []
    for root, label in roots:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            if _hidden(file, src) or file.suffix.lower() in NOT_ITEMS:
                continue
            if modality_of(file) is None:
                skipped.append(file.relative_to(src).as_posix())
                continue
            rows.append(_row(file, base, root, label))
    if skipped:
        log.warning("%s", skipped_message(skipped, src))
    if not rows:
        exts = sorted(e for m in modality_names() for e in get_modality(m).extensions)
        where = f"{src}/<label>/" if labels == "dirs" else f"{src} (recursively)"
        hint = (" (files directly in it are not read with --labels dirs; try --labels none)"
                if labels == "dirs" else "")
        raise InputNotFound(f"no files of a known type ({' '.join(exts)}) found under "
                            f"{where}{hint}")
    table = pd.DataFrame(rows)
    table.attrs["skipped"] = skipped
    return table


def build_folder_manifest(src: str | os.PathLike, out: str | os.PathLike | None = None,
                          labels: str = "dirs", skipped: list[str] | None = None) -> Path:
    """Scan ``src`` and write the manifest to ``out`` (default ``src/manifest.parquet``).

    Paths are stored relative to the manifest's folder, which must contain ``src``.
    ``labels``: "dirs" (SRC/<label>/<files>; the library default, as before) or "none" (any
    tree, no labels; the CLI's default). ``skipped``: a list to extend with the files of no
    known type (paths relative to ``src``)."""
    if not Path(src).is_dir():
        raise InputNotFound(f"dataset folder not found: {src}")
    out = Path(out) if out else Path(src) / "manifest.parquet"
    if not lexical(src).is_relative_to(lexical(out.parent)):
        raise UsageError(f"the manifest must sit in {src} or a folder above it (its paths may not "
                         f"escape its folder); got --out {out}. Try --out {Path(src) / out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    table = scan_folder(src, out.parent, labels)
    if skipped is not None:
        skipped.extend(table.attrs.get("skipped", []))
    log.info("%d items (%s) from %s", len(table),
             ", ".join(f"{m}: {n}" for m, n in table["modality"].value_counts().items()), src)
    return write_manifest(table, out)
