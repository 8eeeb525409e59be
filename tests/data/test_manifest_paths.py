"""Containment is judged on the path as written; symlinked data folders are inside."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import unibind.features.extract as extract_mod
from tests.fixtures.media import make_media_folder
from unibind.data.folder import build_folder_manifest
from unibind.data.manifest import ManifestError, read_manifest, write_manifest


@pytest.fixture()
def linked(tmp_path: Path) -> Path:
    """``proj/ds`` is a symbolic link to ``disk2/ds`` (data on another disk)."""
    make_media_folder(tmp_path / "disk2" / "ds", per_label=1)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "ds").symlink_to(tmp_path / "disk2" / "ds", target_is_directory=True)
    return tmp_path / "proj"


def test_symlinked_data_folder_is_accepted(linked: Path, tmp_path: Path) -> None:
    manifest = build_folder_manifest(linked / "ds", linked / "manifest.parquet")
    m = read_manifest(manifest)
    assert all(p.startswith("ds/") for p in m.table["path"] if p)
    summary = extract_mod.extract(manifest, tmp_path / "f", profile="tiny",
                                  cache_dir=tmp_path / "c")
    assert summary["errors"] == []
    assert {m: s["computed"] for m, s in summary["modalities"].items()} == \
        {"text": 3, "image": 3, "audio": 3}


def test_escapes_still_refused_unless_opted_in(linked: Path, tmp_path: Path) -> None:
    outside = tmp_path / "disk2" / "ds" / "dog" / "0.png"
    rows = [{"id": "a", "modality": "image", "label": "dog", "path": "ds/dog/0.png"},
            {"id": "dots", "modality": "image", "label": "dog",
             "path": "ds/../../disk2/ds/dog/0.png"},
            {"id": "abs", "modality": "image", "label": "dog", "path": str(outside)}]
    with pytest.raises(ManifestError, match=r"escapes the manifest folder .*'dots', 'abs'"):
        write_manifest(pd.DataFrame(rows), linked / "m.csv")
    path = write_manifest(pd.DataFrame(rows), linked / "m.csv", allow_outside=True)
    with pytest.raises(ManifestError, match="--allow-outside-paths"):
        read_manifest(path)
    m = read_manifest(path, allow_outside=True)
    assert m.resolve("ds/../../disk2/ds/dog/0.png") == outside
    summary = extract_mod.extract(path, tmp_path / "f", profile="tiny", cache_dir=tmp_path / "c",
                                  allow_outside=True)
    assert summary["errors"] == [] and summary["modalities"]["image"]["computed"] == 3
    # an absolute path inside the folder is fine without the flag
    inside = [{"id": "x", "modality": "image", "label": "dog",
               "path": str(linked / "ds/dog/0.png")}]
    read_manifest(write_manifest(pd.DataFrame(inside), linked / "in.csv"))


@pytest.mark.parametrize("name, content", [("m.parquet", b"garbage"),
                                           ("m.csv", b'id,label\n"a,b\n'),
                                           ("m.jsonl", b'{"id": 1\n')])
def test_damaged_manifest_is_one_clear_error(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ManifestError, match=f"{name}: cannot read the"):
        read_manifest(tmp_path / name)
