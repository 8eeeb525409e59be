"""ESC-50 (2,000 five-second clips, 50 classes, 5 folds) as a manifest, optionally fold-merged.

``source`` is a URL (downloaded with resume and checks), a local zip or an extracted folder; its
``meta/esc50.csv`` gives filename, fold, target and category. Labels are the category names. With
``merge_folds`` the clips of one class and fold are concatenated (in filename order) into one file,
as the reference recipe did: 5 files per class, ``group`` = ``<category>/fold<k>``. Without it every
clip is an item (40 per class) and its ``group`` is the same ``<category>/fold<k>``.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import soundfile as sf

from unibind.data.download import download
from unibind.data.manifest import write_manifest
from unibind.errors import UnibindError
from unibind.util.atomic import atomic_file, atomic_folder
from unibind.util.jsonio import read_json, write_json_atomic

log = logging.getLogger(__name__)

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
LICENCE = ("ESC-50 (K. J. Piczak, 2015, https://github.com/karolpiczak/ESC-50) is licensed under "
           "Creative Commons Attribution-NonCommercial 3.0 (CC BY-NC 3.0): non-commercial use "
           "only, with attribution; the clips come from freesound.org.")
META = "meta/esc50.csv"
META_COLUMNS = ("filename", "fold", "target", "category")


class ESC50Error(UnibindError, ValueError):
    """A source that is not an ESC-50-shaped dataset."""


def _is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def _find_root(folder: Path) -> Path:
    """The folder holding ``meta/esc50.csv``: ``folder`` itself or one level below."""
    for cand in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if (cand / META).is_file():
            return cand
    raise ESC50Error(f"{folder}: no {META} found (in it or one folder below)")


def extract_zip(zip_path: Path, dest: Path) -> Path:
    """Extract ``meta/esc50.csv`` and ``audio/*.wav`` of an ESC-50 zip into ``dest`` (atomic);
    an extraction of the same zip (name and size) is reused."""
    stamp = {"zip": zip_path.name, "size": zip_path.stat().st_size}
    if (dest / META).is_file() and (dest / ".source.json").is_file():
        if read_json(dest / ".source.json") == stamp:
            log.info("%s: reusing extracted %s", dest, zip_path.name)
            return dest
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise ESC50Error(f"{zip_path}: not a zip file ({exc})") from exc
    with zf, atomic_folder(dest) as tmp:
        metas = [n for n in zf.namelist() if n == META or n.endswith("/" + META)]
        if not metas:
            raise ESC50Error(f"{zip_path}: no {META} inside the archive")
        prefix = metas[0][: -len(META)]
        (tmp / "meta").mkdir()
        (tmp / "audio").mkdir()
        (tmp / META).write_bytes(zf.read(metas[0]))
        n = 0
        for name in zf.namelist():
            rel = PurePosixPath(name[len(prefix):]) if name.startswith(prefix) else None
            if rel is None or len(rel.parts) != 2 or rel.parts[0] != "audio":
                continue
            if rel.suffix.lower() != ".wav":
                continue
            with zf.open(name) as src, open(tmp / "audio" / rel.name, "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
        write_json_atomic(tmp / ".source.json", stamp)
        log.info("extracted %d clips from %s", n, zip_path)
    return dest


def read_meta(root: Path) -> pd.DataFrame:
    """The ``meta/esc50.csv`` table, checked for the columns unibind needs."""
    meta = pd.read_csv(root / META, dtype=str, keep_default_na=False)
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise ESC50Error(f"{root / META}: missing column(s) {missing}; has {list(meta.columns)}")
    bad = meta[~meta["fold"].str.fullmatch(r"\d+")]
    if len(bad):
        raise ESC50Error(f"{root / META}: non-integer fold for {bad['filename'].tolist()[:10]}")
    meta["fold"] = meta["fold"].astype(int)
    return meta


def _resolve_source(source: str | os.PathLike | None, out: Path, sha256: str | None,
                    progress: bool) -> tuple[Path, bool]:
    """The dataset root folder for ``source``, and whether it was downloaded."""
    source = ESC50_URL if source is None else source
    downloaded = False
    if isinstance(source, str) and _is_url(source):
        name = Path(urlparse(source).path).name or "esc50.zip"
        if name == "master.zip":
            name = "ESC-50-master.zip"
        log.info("downloading ESC-50 from %s. Licence: %s", source, LICENCE)
        zip_path = download(source, out / "downloads" / name, sha256=sha256, progress=progress)
        downloaded = True
    else:
        zip_path = Path(source)
    if zip_path.is_dir():
        return _find_root(zip_path), downloaded
    if not zip_path.is_file():
        raise ESC50Error(f"ESC-50 source not found: {source} (a URL, a zip or a folder)")
    return extract_zip(zip_path, out / "ESC-50"), downloaded


def _merge_group(clips: list[Path], dest: Path) -> tuple[int, list[dict]]:
    """Concatenate ``clips`` into ``dest`` (skipped when it already has the expected length);
    returns the number of frames written and the clips that failed."""
    errors, infos = [], []
    for clip in clips:
        try:
            infos.append((clip, sf.info(clip)))
        except Exception as exc:  # soundfile raises several types for bad files
            errors.append({"id": clip.name, "path": str(clip), "reason": f"undecodable: {exc}"})
    if not infos:
        return 0, errors
    rate = infos[0][1].samplerate
    for clip, info in infos[1:]:
        if info.samplerate != rate:
            errors.append({"id": clip.name, "path": str(clip),
                           "reason": f"sample rate {info.samplerate} != {rate} of the fold"})
    infos = [(c, i) for c, i in infos if i.samplerate == rate]
    expected = sum(i.frames for _, i in infos)
    if dest.is_file():
        try:
            if sf.info(dest).frames == expected:
                return expected, errors
        except Exception:  # a damaged output is rewritten
            pass
    parts = []
    for clip, _ in infos:
        try:
            data, _ = sf.read(clip, dtype="float32", always_2d=True)
        except Exception as exc:
            errors.append({"id": clip.name, "path": str(clip), "reason": f"undecodable: {exc}"})
            continue
        parts.append(data.mean(axis=1))
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    subtype = infos[0][1].subtype if infos[0][1].subtype.startswith("PCM") else "FLOAT"
    with atomic_file(dest) as fh:
        sf.write(fh, audio, rate, format="WAV", subtype=subtype)
    return len(audio), errors


def build_esc50(out: str | os.PathLike, source: str | os.PathLike | None = None,
                merge_folds: bool = False, sha256: str | None = None,
                manifest: str = "manifest.parquet", progress: bool = True) -> dict:
    """Write ``OUT/<manifest>`` for ESC-50 and return a summary (items, labels, errors, licence).

    Re-running resumes: a partial download continues, an extraction and finished merged files are
    reused. Clips that are missing or do not decode are reported in ``errors`` and left out.
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root, downloaded = _resolve_source(source, out, sha256, progress)
    meta = read_meta(root)
    errors: list[dict] = []
    present = meta["filename"].map(lambda f: (root / "audio" / f).is_file())
    for name in meta.loc[~present, "filename"]:
        errors.append({"id": name, "path": str(root / "audio" / name), "reason": "missing file"})
    meta = meta[present].sort_values(["category", "fold", "filename"]).reset_index(drop=True)
    if not merge_folds and not root.is_relative_to(out):
        audio = out / "ESC-50" / "audio"  # manifest paths must stay inside the manifest folder
        audio.mkdir(parents=True, exist_ok=True)
        for name in meta["filename"]:
            if not (audio / name).is_file():
                shutil.copy2(root / "audio" / name, audio / name)
        root = out / "ESC-50"
    rows = []
    if merge_folds:
        groups = list(meta.groupby(["category", "fold"], sort=True))
        for (category, fold), clips in _progress(groups, progress, "merging folds"):
            dest = out / "merged" / category / f"fold{fold}.wav"
            files = [root / "audio" / f for f in clips["filename"]]
            frames, errs = _merge_group(files, dest)
            errors.extend(errs)
            bad = {e["id"] for e in errs}
            used = [f for f in clips["filename"] if f not in bad]
            if not used:
                continue
            rows.append({"id": f"esc50/{category}/fold{fold}", "modality": "audio",
                         "label": category, "group": f"{category}/fold{fold}", "split": "",
                         "path": os.path.relpath(dest, out), "text": "", "fold": int(fold),
                         "target": str(clips["target"].iloc[0]), "clips": len(used),
                         "frames": int(frames), "source_files": "|".join(used)})
    else:
        for rec in meta.itertuples(index=False):
            clip = root / "audio" / rec.filename
            try:
                sf.info(clip)
            except Exception as exc:
                errors.append({"id": rec.filename, "path": str(clip),
                               "reason": f"undecodable: {exc}"})
                continue
            rows.append({"id": f"esc50/{rec.filename}", "modality": "audio",
                         "label": rec.category, "group": f"{rec.category}/fold{rec.fold}",
                         "split": "", "path": os.path.relpath(clip, out),
                         "text": "", "fold": int(rec.fold), "target": str(rec.target)})
    if not rows:
        raise ESC50Error(f"{root}: no usable clips")
    table = pd.DataFrame(rows)
    path = write_manifest(table, out / manifest)
    for err in errors:
        log.warning("ESC-50 item %s: %s", err["id"], err["reason"])
    log.info("ESC-50: %d items, %d classes -> %s. %s", len(table), table["label"].nunique(),
             path, LICENCE)
    return {"out": str(path), "items": len(table), "labels": int(table["label"].nunique()),
            "folds": sorted(int(f) for f in table["fold"].unique()),
            "merged": merge_folds, "downloaded": downloaded, "source": str(source or ESC50_URL),
            "licence": LICENCE, "errors": errors}


def _progress(items: list, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, disable=not enabled, leave=False)
