from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from unibind.data.folder import build_folder_manifest
from unibind.data.manifest import ManifestError, read_manifest, write_manifest


def test_folder_manifest_groups_by_stem(media_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="may not escape"):
        build_folder_manifest(media_folder, tmp_path / "elsewhere" / "manifest.parquet")
    out = build_folder_manifest(media_folder)
    assert out == media_folder / "manifest.parquet"
    m = read_manifest(out)
    t = m.table
    assert len(t) == 18
    assert t["modality"].value_counts().to_dict() == {"image": 6, "audio": 6, "text": 6}
    dog0 = t[t["group"] == "dog/0"]
    assert sorted(dog0["modality"]) == ["audio", "image", "text"]
    assert (dog0["label"] == "dog").all()
    text = dog0[dog0["modality"] == "text"].iloc[0]
    assert text["text"] == "a dog barking in the yard, take 0" and text["path"] == ""
    image = dog0[dog0["modality"] == "image"].iloc[0]
    assert m.resolve(image["path"]) == (media_folder / "dog" / "0.png").resolve()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formats_round_trip(media_folder: Path, suffix: str) -> None:
    out = build_folder_manifest(media_folder, media_folder.parent / f"manifest{suffix}")
    assert len(read_manifest(out)) == 18


def _write_raw(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_validation_names_every_offending_row(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(b"x")
    rows = [
        {"id": "good", "modality": "image", "label": "a", "path": "ok.png", "text": ""},
        {"id": "dup", "modality": "text", "label": "a", "path": "", "text": "hi"},
        {"id": "dup", "modality": "text", "label": "a", "path": "", "text": "hi again"},
        {"id": "vid", "modality": "video", "label": "a", "path": "ok.png", "text": ""},
        {"id": "gone", "modality": "audio", "label": "a", "path": "nope.wav", "text": ""},
        {"id": "blank", "modality": "text", "label": "a", "path": "", "text": "   "},
        {"id": "escape", "modality": "image", "label": "a", "path": "../../etc/passwd", "text": ""},
    ]
    with pytest.raises(ManifestError) as err:
        read_manifest(_write_raw(tmp_path, rows))
    msg = str(err.value)
    assert "duplicate id" in msg and "'dup'" in msg
    assert "unknown modality ['video']" in msg and "'vid'" in msg
    assert "missing file" in msg and "'gone'" in msg
    assert "empty text" in msg and "'blank'" in msg
    assert "escapes the manifest folder" in msg and "'escape'" in msg
    assert "'good'" not in msg


def test_missing_required_column(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame([{"id": "a", "label": "x"}]).to_csv(path, index=False)
    with pytest.raises(ManifestError, match="modality"):
        read_manifest(path)


def test_write_refuses_invalid_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    good = pd.DataFrame([{"id": "t", "modality": "text", "label": "a", "text": "hello"}])
    write_manifest(good, path)
    bad = pd.DataFrame([{"id": "t", "modality": "text", "label": "a", "text": ""}])
    with pytest.raises(ManifestError, match="empty text"):
        write_manifest(bad, path)
    assert read_manifest(path).table["text"].tolist() == ["hello"]


def test_split_values_checked(tmp_path: Path) -> None:
    bad = pd.DataFrame([{"id": "t", "modality": "text", "label": "a", "text": "x",
                         "split": "holdout"}])
    with pytest.raises(ManifestError, match="split must be one of"):
        write_manifest(bad, tmp_path / "m.csv")
