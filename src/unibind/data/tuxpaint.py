"""Tux Paint's stamps (Debian ``tuxpaint-stamps-default``, GPL-2) as an image/caption/sound set.

Each stamp under ``usr/share/tuxpaint/stamps/<category>/.../<name>.*`` has a picture
(``<name>.png``), a caption (``<name>.txt``, first line English, then translations) and, for
about 134 of them, a sound effect ``<name>.ogg``; ``<name>_desc*.ogg`` / ``<name>_<lang>.ogg``
are spoken descriptions and are not used. Labels come from the folder path (``level`` 1: the
category, e.g. ``animals``); one stamp is one ``group`` (its image, caption and sound).

The package is fetched with ``apt-get download`` (no root needed beyond an up-to-date package
list) into the user cache and unpacked with ``dpkg-deb -x`` (a pure-Python fallback reads the
``.deb`` where dpkg is missing).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd

from unibind.data.manifest import write_manifest
from unibind.errors import UnibindError
from unibind.util.atomic import atomic_folder
from unibind.util.runtime import cache_root

log = logging.getLogger(__name__)

PACKAGE = "tuxpaint-stamps-default"
STAMPS = Path("usr/share/tuxpaint/stamps")
SOUND_EXTS = (".ogg", ".wav")
LICENCE = ("Tux Paint stamps (Debian package tuxpaint-stamps-default, "
           "https://tuxpaint.org) are licensed under the GNU GPL version 2 or later; "
           "see usr/share/doc/tuxpaint-stamps-default/copyright in the package.")


class TuxpaintError(UnibindError, RuntimeError):
    """The package could not be fetched or unpacked; the message says what to do."""


def default_dir() -> Path:
    """Where the stamps are unpacked: ``<cache>/data/tuxpaint``."""
    return cache_root() / "data" / "tuxpaint"


def download_deb(dest: Path) -> Path:
    """``apt-get download tuxpaint-stamps-default`` into ``dest``; the .deb path."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{PACKAGE}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise TuxpaintError(
            f"cannot download {PACKAGE}: apt-get not found (not a Debian/Ubuntu system). "
            f"Download the .deb elsewhere and pass --deb FILE, or use `unibind demo --data DIR`")
    try:
        proc = subprocess.run(["apt-get", "download", PACKAGE], cwd=dest, capture_output=True,
                              text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise TuxpaintError(f"apt-get download {PACKAGE} timed out after 15 min") from exc
    found = sorted(dest.glob(f"{PACKAGE}_*.deb"))
    if proc.returncode != 0 or not found:
        reason = (proc.stderr or proc.stdout).strip().splitlines()
        raise TuxpaintError(
            f"`apt-get download {PACKAGE}` failed ({reason[-1] if reason else proc.returncode})."
            " Check the network and run `sudo apt-get update` (the package is in Debian/Ubuntu"
            " main), or pass --deb FILE, or run `unibind demo --data DIR` with your own folder")
    return found[-1]


def unpack_deb(deb: Path, dest: Path) -> Path:
    """Unpack ``deb`` into ``dest`` (atomically); returns the stamps folder."""
    if (dest / STAMPS).is_dir():
        return dest / STAMPS
    if not Path(deb).is_file():
        raise TuxpaintError(f"package file not found: {deb}")
    with atomic_folder(dest) as tmp:
        if shutil.which("dpkg-deb"):
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                raise TuxpaintError(f"dpkg-deb -x {deb} failed: {proc.stderr.strip()}")
        else:
            _extract_ar_data(Path(deb), tmp)
    if not (dest / STAMPS).is_dir():
        raise TuxpaintError(f"{deb} holds no {STAMPS} folder: is it {PACKAGE}?")
    return dest / STAMPS


def _extract_ar_data(deb: Path, dest: Path) -> None:
    """A .deb is an ``ar`` archive; unpack its ``data.tar.*`` member with tarfile."""
    with open(deb, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise TuxpaintError(f"{deb} is not a Debian package (no ar header)")
        while header := fh.read(60):
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            data = fh.read(size)
            fh.read(size % 2)
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    try:
                        tar.extractall(dest, filter="data")
                    except TypeError:  # Python without extraction filters (< 3.10.12)
                        tar.extractall(dest)  # noqa: S202
                return
    raise TuxpaintError(f"{deb} has no data.tar member")


def caption(txt: Path) -> str:
    """The English caption: the first non-empty line of the stamp's .txt."""
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def scan_stamps(stamps: Path, level: int = 1, extras: bool = True) -> pd.DataFrame:
    """Manifest rows for every stamp with a PNG (image, caption, sound when present), paths
    relative to ``stamps``. ``extras=False`` keeps only stamps that have a sound (the full
    image/caption/sound triples)."""
    stamps = Path(stamps).resolve()
    rows, svg_only = [], 0
    names = {p.with_suffix("") for p in stamps.rglob("*") if p.suffix.lower() in (".png", ".svg")}
    for stem in sorted(names):
        rel = stem.relative_to(stamps)
        png = stem.with_suffix(".png")
        if not png.is_file():
            svg_only += 1
            continue
        sound = next((stem.with_suffix(e) for e in SOUND_EXTS if stem.with_suffix(e).is_file()),
                     None)
        if sound is None and not extras:
            continue
        parts = rel.parts[:-1]
        label = "/".join(parts[:level]) if parts else "misc"
        group = f"tuxpaint/{rel.as_posix()}"
        common = {"label": label, "group": group, "split": ""}
        rows.append({"id": f"{group}:image", "modality": "image",
                     "path": png.relative_to(stamps).as_posix(), "text": "", **common})
        txt = stem.with_suffix(".txt")
        text = caption(txt) if txt.is_file() else ""
        if text:
            rows.append({"id": f"{group}:text", "modality": "text", "path": "", "text": text,
                         **common})
        if sound is not None:
            rows.append({"id": f"{group}:audio", "modality": "audio",
                         "path": sound.relative_to(stamps).as_posix(), "text": "", **common})
    if svg_only:
        log.info("skipped %d SVG-only stamp(s) (no PNG)", svg_only)
    if not rows:
        raise TuxpaintError(f"no stamps with a PNG under {stamps}")
    return pd.DataFrame(rows)


def _copy_media(src: Path, table: pd.DataFrame, dest: Path) -> Path:
    """Copy the files the manifest uses (not the spoken descriptions) under ``dest``."""
    for rel in table.loc[table["path"] != "", "path"]:
        target = dest / rel
        if not target.is_file() or target.stat().st_size != (src / rel).stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, target)
    return dest


def build_tuxpaint(out: str | os.PathLike | None = None, deb: str | os.PathLike | None = None,
                   source: str | os.PathLike | None = None, level: int = 1,
                   extras: bool = True) -> dict[str, Any]:
    """Fetch (or reuse) the package, unpack it and write ``OUT/manifest.parquet``.

    ``source``: an already unpacked package root (or its stamps folder); ``deb``: a local .deb.
    Returns a summary (manifest, items per modality, labels, triples, licence)."""
    out = (Path(out) if out else default_dir()).resolve()
    if source is not None:
        source = Path(source)
        stamps = source / STAMPS if (source / STAMPS).is_dir() else source
        if not stamps.is_dir():
            raise TuxpaintError(f"stamps folder not found: {stamps}")
    else:
        deb_path = Path(deb) if deb else download_deb(out / "deb")
        stamps = unpack_deb(deb_path, out / "package")
    table = scan_stamps(stamps, level=level, extras=extras)
    stamps = stamps.resolve()
    if not stamps.is_relative_to(out):  # manifest paths may not leave OUT: copy the media
        stamps = _copy_media(stamps, table, out / "package" / STAMPS)
    has = table["path"] != ""
    table.loc[has, "path"] = [os.path.relpath(stamps / p, out) for p in table.loc[has, "path"]]
    manifest = write_manifest(table, out / "manifest.parquet")
    triples = table.groupby("group")["modality"].nunique().eq(3).sum()
    counts = table["modality"].value_counts().to_dict()
    log.info("tuxpaint: %s items (%d full triples) in %s", counts, triples, manifest)
    return {"out": str(manifest), "items": len(table), "modalities": counts,
            "labels": int(table["label"].nunique()), "triples": int(triples),
            "licence": LICENCE}
