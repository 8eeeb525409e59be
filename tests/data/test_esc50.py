"""ESC-50 builder on a small ESC-50-shaped archive served over loopback HTTP (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.fixtures import data_builders as fx
from unibind.cli import app
from unibind.data.download import DownloadError
from unibind.data.esc50 import LICENCE, ESC50Error, build_esc50
from unibind.data.manifest import read_manifest

CLASSES = ("dog", "rain", "chirping_birds")


@pytest.fixture(scope="module")
def archive():
    return fx.esc50_zip(CLASSES, folds=5, per_fold=2)


@pytest.fixture()
def server():
    with fx.LoopbackServer() as srv:
        yield srv


def _frames(manifest) -> dict[str, int]:
    return {r.id: sf.info(manifest.resolve(r.path)).frames for r in manifest.table.itertuples()}


def test_download_merge_folds(server, tmp_path, archive, caplog):
    data, lengths = archive
    server.files["/master.zip"] = fx.Served(data)
    digest = hashlib.sha256(data).hexdigest()
    with caplog.at_level("INFO"):
        summary = build_esc50(tmp_path / "esc", source=server.url("master.zip"),
                              merge_folds=True, sha256=digest, progress=False)
    assert "CC BY-NC 3.0" in caplog.text and summary["licence"] == LICENCE
    assert summary["downloaded"] and summary["errors"] == []
    m = read_manifest(summary["out"])
    table = m.table
    assert len(table) == len(CLASSES) * 5 and summary["labels"] == len(CLASSES)
    assert (table.groupby("label").size() == 5).all()
    assert set(table["label"]) == set(CLASSES)
    frames = _frames(m)
    for row in table.itertuples():
        clips = row.source_files.split("|")
        assert len(clips) == 2 and all(c.startswith(f"{row.fold}-") for c in clips)
        assert frames[row.id] == sum(lengths[c] for c in clips)
        assert row.group == f"{row.label}/fold{row.fold}"
    # the merged audio is the clips one after the other
    row = table.iloc[0]
    merged, _ = sf.read(m.resolve(row.path), dtype="int16")
    root = tmp_path / "esc" / "ESC-50" / "audio"
    parts = [sf.read(root / c, dtype="int16")[0] for c in row.source_files.split("|")]
    assert (merged[: len(parts[0])] == parts[0]).all()
    assert (merged[len(parts[0]):] == parts[1]).all()
    # a re-run reuses download, extraction and merged files
    n = len(server.requests)
    again = build_esc50(tmp_path / "esc", source=server.url("master.zip"), merge_folds=True,
                        sha256=digest, progress=False)
    assert len(server.requests) == n and again["items"] == summary["items"]


def test_cut_download_resumes_then_builds(server, tmp_path, archive):
    data, _ = archive
    server.files["/master.zip"] = fx.Served(data, cuts=[len(data) // 2])
    summary = build_esc50(tmp_path / "esc", source=server.url("master.zip"), progress=False)
    assert [r for _, r in server.requests] == [None, f"bytes={len(data) // 2}-"]
    table = read_manifest(summary["out"]).table
    assert len(table) == len(CLASSES) * 10
    assert (table.groupby("label").size() == 10).all()
    assert set(table["group"]) == {f"{c}/fold{k}" for c in CLASSES for k in range(1, 6)}


def test_digest_mismatch_refused(server, tmp_path, archive):
    server.files["/master.zip"] = fx.Served(archive[0])
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        build_esc50(tmp_path / "esc", source=server.url("master.zip"), sha256="ab" * 32,
                    progress=False)
    assert not (tmp_path / "esc" / "manifest.parquet").exists()


def test_local_folder_and_bad_clip(tmp_path, archive):
    data, lengths = archive
    src = tmp_path / "src"
    zipfile.ZipFile(io.BytesIO(data)).extractall(src)
    audio = src / "ESC-50-master" / "audio"
    bad = sorted(audio.glob("1-*-0.wav"))[0]
    bad.write_bytes(b"not a wav file")
    (audio / sorted(audio.glob("2-*-1.wav"))[0].name).unlink()
    out = tmp_path / "out"
    summary = build_esc50(out, source=src, merge_folds=True, progress=False)
    reasons = {e["id"]: e["reason"] for e in summary["errors"]}
    assert reasons[bad.name].startswith("undecodable")
    assert any(r == "missing file" for r in reasons.values()) and len(reasons) == 2
    m = read_manifest(summary["out"])
    row = m.table[m.table["id"] == "esc50/dog/fold1"].iloc[0]
    assert row.clips == 1 and bad.name not in row.source_files
    assert _frames(m)[row.id] == lengths[row.source_files]
    # without merging, clips outside the output folder are copied in
    flat = build_esc50(tmp_path / "flat", source=src, progress=False)
    assert len(read_manifest(flat["out"]).table) == len(CLASSES) * 10 - 2


def test_not_esc50(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ESC50Error, match="meta/esc50.csv"):
        build_esc50(tmp_path / "out", source=tmp_path / "x", progress=False)


def test_cli_json(tmp_path, archive):
    zip_path = tmp_path / "esc.zip"
    zip_path.write_bytes(archive[0])
    result = CliRunner().invoke(app, ["data", "esc50", "--out", str(tmp_path / "o"),
                                      "--source", str(zip_path), "--merge-folds", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # exactly one JSON object
    assert summary["items"] == len(CLASSES) * 5 and "CC BY-NC" in summary["licence"]
    bad = CliRunner().invoke(app, ["data", "esc50", "--out", str(tmp_path / "o2"),
                                   "--source", str(tmp_path / "nope.zip")])
    assert bad.exit_code == 2 and "not found" in bad.output
