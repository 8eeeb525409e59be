"""Images per class from the web (``bing-image-downloader``, extra ``[web]``) or a local folder,
cleaned and written as a manifest.

Cleaning drops files that do not decode, exact duplicates (same sha256 of the bytes, across all
classes) and images whose shorter side is under ``min_side``; every dropped file is reported with
its reason. Kept images are copied to ``OUT/images/<label>/`` and the source URL is recorded in
the ``source_url`` column when the downloader reported it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from unibind.data.folder import IMAGE_EXTS
from unibind.data.manifest import read_manifest, write_manifest
from unibind.errors import InputNotFound, UnibindError, UsageError
from unibind.util.atomic import atomic_file
from unibind.util.jsonio import read_json, write_json_atomic

log = logging.getLogger(__name__)

WEB_HINT = ("web image download needs the optional package bing-image-downloader: "
            "pip install 'unibind[web]'")
SOURCES = "sources.json"
Fetch = Callable[[str, int, Path], dict[str, str]]


class WebExtraMissing(UnibindError, RuntimeError):
    """``bing-image-downloader`` is not installed."""


@dataclass(frozen=True)
class Candidate:
    label: str
    path: Path
    url: str = ""
    name: str = ""  # file name in OUT/images/<label>/ (nested folders flattened with "__")

    @property
    def filename(self) -> str:
        return self.name or self.path.name


def natural_key(text: str) -> list:
    """Sort key that puts ``Image_2`` before ``Image_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def safe_name(label: str) -> str:
    """A label as a folder name."""
    name = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", label).strip(". ")
    return name or "_"


def read_labels(labels_file: str | os.PathLike | None = None,
                manifest: str | os.PathLike | None = None) -> list[str]:
    """Labels from a text file (one a line, ``#`` comments) or the labels of a manifest."""
    labels: list[str] = []
    if labels_file is not None:
        if not Path(labels_file).is_file():
            raise InputNotFound(f"labels file not found: {labels_file}")
        for line in Path(labels_file).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                labels.append(line)
    if manifest is not None:
        labels.extend(sorted(read_manifest(manifest, check_files=False).table["label"].unique()))
    return list(dict.fromkeys(labels))


_DOWNLOADING = re.compile(r"Downloading Image #(\d+) from (\S+)")


def bing_fetch(query: str, limit: int, folder: Path, timeout: int = 30,
               adult_filter_off: bool = False) -> dict[str, str]:
    """Download up to ``limit`` images for ``query`` into ``folder`` with bing-image-downloader;
    return ``{file name: source URL}`` parsed from the package's log (it prints to stdout, which is
    captured so that ``--json`` output stays clean)."""
    try:
        from bing_image_downloader import downloader
    except ImportError as exc:
        raise WebExtraMissing(WEB_HINT) from exc
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        downloader.download(query, limit=limit, output_dir=str(folder),
                            adult_filter_off=adult_filter_off, force_replace=False,
                            timeout=timeout, verbose=True)
    urls, pending = {}, None
    for line in buf.getvalue().splitlines():
        match = _DOWNLOADING.search(line)
        if match:
            pending = (int(match.group(1)), match.group(2))
        elif "File Downloaded" in line and pending:
            urls[pending[0]] = pending[1]
            pending = None
        elif "Issue getting" in line:
            pending = None
    found = {}
    for file in folder.rglob("Image_*"):
        match = re.match(r"Image_(\d+)\.", file.name)
        if match and int(match.group(1)) in urls:
            found[file.relative_to(folder).as_posix()] = urls[int(match.group(1))]
    return found


def _image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
             | {".jpe", ".jfif", ".gif", ".tiff", ".exif"}]
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def fetch_web(labels: list[str], raw: Path, limit: int, fetch: Fetch,
              query_template: str = "{label}") -> list[Candidate]:
    """Fetch ``limit`` images per label into ``raw/<label>/`` (a label that already has them is
    not fetched again) and return the candidates with their source URLs."""
    candidates = []
    for label in labels:
        folder = raw / safe_name(label)
        have = _image_files(folder) if folder.is_dir() else []
        sources = read_json(folder / SOURCES) if (folder / SOURCES).is_file() else {}
        if len(have) < limit:
            query = query_template.format(label=label.replace("_", " "))
            log.info("fetching %d image(s) for %r (query %r)", limit, label, query)
            folder.mkdir(parents=True, exist_ok=True)
            sources.update(fetch(query, limit, folder))
            write_json_atomic(folder / SOURCES, sources)
            have = _image_files(folder)
        for file in have:
            rel = file.relative_to(folder).as_posix()
            candidates.append(Candidate(label, file, sources.get(rel, ""), file.name))
    return candidates


def folder_candidates(src: Path, labels: list[str] | None = None) -> list[Candidate]:
    """Images under ``src/<label>/`` (only ``labels`` when given); ``sources.json`` in a label
    folder maps file names to URLs."""
    if not src.is_dir():
        raise InputNotFound(f"image folder not found: {src}")
    dirs = sorted(p for p in src.iterdir() if p.is_dir())
    names = {d.name: d.name for d in dirs}
    if labels is not None:
        names = {safe_name(label): label for label in labels if safe_name(label) in names}
        dirs = [d for d in dirs if d.name in names]
    candidates = []
    for folder in dirs:
        sources = read_json(folder / SOURCES) if (folder / SOURCES).is_file() else {}
        for file in _image_files(folder):
            rel = file.relative_to(folder).as_posix()
            candidates.append(Candidate(names[folder.name], file, sources.get(rel, ""),
                                        rel.replace("/", "__")))
    return candidates


def inspect_image(path: Path) -> tuple[int, int]:
    """Fully decode an image; return (width, height) or raise."""
    with Image.open(path) as img:
        img.load()
        return img.size


def clean(candidates: list[Candidate], per_class: int | None = None,
          min_side: int = 64) -> tuple[list[dict], list[dict]]:
    """Keep the first ``per_class`` good images of each label (all when None).

    Returns (kept, dropped); kept entries hold label, path, url, digest, width, height; dropped
    entries hold id, path and the reason (undecodable, too small, duplicate of another file).
    """
    kept: list[dict] = []
    dropped: list[dict] = []
    seen: dict[str, str] = {}
    count: dict[str, int] = {}
    for cand in candidates:
        if per_class is not None and count.get(cand.label, 0) >= per_class:
            continue
        ident = f"{cand.label}/{cand.filename}"
        try:
            digest = hashlib.sha256(cand.path.read_bytes()).hexdigest()
            width, height = inspect_image(cand.path)
        except Exception as exc:  # PIL raises many types for bad files
            dropped.append({"id": ident, "path": str(cand.path), "reason": f"undecodable: {exc}"})
            continue
        if digest in seen:
            dropped.append({"id": ident, "path": str(cand.path),
                            "reason": f"duplicate of {seen[digest]}"})
            continue
        seen[digest] = ident
        if min(width, height) < min_side:
            dropped.append({"id": ident, "path": str(cand.path),
                            "reason": f"too small: {width}x{height} < {min_side}px"})
            continue
        count[cand.label] = count.get(cand.label, 0) + 1
        kept.append({"label": cand.label, "path": cand.path, "name": cand.filename,
                     "url": cand.url, "digest": digest, "width": width, "height": height})
    return kept, dropped


def _copy(src: Path, dest: Path) -> None:
    if dest.exists() and dest.resolve() == src.resolve():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dest) as fh, open(src, "rb") as source:
        shutil.copyfileobj(source, fh)


def build_images(out: str | os.PathLike, labels: list[str] | None = None,
                 per_class: int | None = 5, *, from_folder: str | os.PathLike | None = None,
                 min_side: int = 64, extra: int | None = None, query_template: str = "{label}",
                 fetch: Fetch | None = None, manifest: str = "manifest.parquet") -> dict:
    """Write ``OUT/<manifest>`` of cleaned images and return a summary.

    Web mode (no ``from_folder``): ``per_class + extra`` images per label are fetched into
    ``OUT/raw/`` (``extra`` defaults to ``per_class``, spare images that replace dropped ones).
    """
    out = Path(out).resolve()
    if from_folder is not None:
        candidates = folder_candidates(Path(from_folder), labels)
        mode = "folder"
    else:
        if not labels:
            raise UsageError("no labels: give a labels file, a manifest or --from-folder")
        if per_class is None or per_class < 1:
            raise UsageError("per_class must be >= 1 for web download")
        limit = per_class + (per_class if extra is None else extra)
        candidates = fetch_web(labels, out / "raw", limit, fetch or bing_fetch, query_template)
        mode = "web"
    kept, dropped = clean(candidates, per_class, min_side)
    if not kept:
        raise InputNotFound(f"no usable images ({len(dropped)} dropped)")
    rows = []
    for item in kept:
        label_dir = safe_name(item["label"])
        dest = out / "images" / label_dir / item["name"]
        _copy(item["path"], dest)
        rows.append({"id": f"image/{label_dir}/{dest.name}", "modality": "image",
                     "label": item["label"], "group": f"{item['label']}/{dest.stem}",
                     "split": "", "path": os.path.relpath(dest, out), "text": "",
                     "source_url": item["url"], "sha256": item["digest"],
                     "width": item["width"], "height": item["height"]})
    table = pd.DataFrame(rows)
    path = write_manifest(table, out / manifest)
    counts = table["label"].value_counts()
    wanted = labels if labels is not None else sorted({c.label for c in candidates})
    short = {lab: int(counts.get(lab, 0)) for lab in wanted
             if per_class is not None and counts.get(lab, 0) < per_class}
    for lab, n in short.items():
        log.warning("class %r: %d usable image(s) of %d wanted", lab, n, per_class)
    log.info("%d image(s) kept, %d dropped -> %s", len(table), len(dropped), path)
    return {"out": str(path), "mode": mode, "items": len(table),
            "labels": int(table["label"].nunique()), "dropped": dropped, "short": short,
            "with_url": int((table["source_url"] != "").sum())}
