"""data folder: every format the decoders read is an item, skipped files are named, manifests
and hidden files are neither items nor skipped, and the CLI prints JSON only with --json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from unibind.cli import app
from unibind.data.folder import SHOW_SKIPPED, build_folder_manifest, scan_folder
from unibind.media.decode import load_audio, load_image
from unibind.modalities import AUDIO, IMAGE

SOUNDS = {".opus": ("OGG", "OPUS"), ".oga": ("OGG", "VORBIS"), ".aiff": ("AIFF", "PCM_16"),
          ".au": ("AU", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".caf": ("CAF", "PCM_16")}
PICTURES = {".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF", ".webp": "WEBP", ".bmp": "BMP",
            ".ppm": "PPM", ".jp2": "JPEG2000", ".ico": "ICO"}


def test_every_listed_extension_has_a_decoder():
    Image.init()
    assert IMAGE.extensions <= set(Image.registered_extensions())
    readable = {e.lower() for e, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    assert IMAGE.extensions <= readable
    formats = set(sf.available_formats())
    assert {"OGG", "AIFF", "AU", "CAF", "W64", "RF64", "MP3", "FLAC", "WAV"} <= formats
    assert {".opus", ".aiff", ".au", ".tif", ".gif"} <= AUDIO.extensions | IMAGE.extensions


def test_formats_are_items_and_decode(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for ext, (fmt, sub) in SOUNDS.items():
        sf.write(src / f"s{ext}", (rng.standard_normal(48000) * 0.1).astype("float32"), 48000,
                 format=fmt, subtype=sub)
    for ext, fmt in PICTURES.items():
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            src / f"p{ext}", format=fmt)
    table = scan_folder(src, src, labels="none")
    got = dict(zip(table["path"], table["modality"]))
    assert got == {**{f"s{e}": "audio" for e in SOUNDS}, **{f"p{e}": "image" for e in PICTURES}}
    for path, m in got.items():
        if m == "audio":
            assert len(load_audio(src / path, 16000)) > 0
        else:
            assert load_image(src / path).size == (32, 32)


def test_skipped_files_are_named_and_manifests_not_counted(tmp_path: Path, caplog):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "config").write_text("x")
    (src / ".hidden.png").write_bytes(b"x")
    (src / "a.txt").write_text("a caption")
    (src / "song.m4a").write_bytes(b"x")
    for i in range(SHOW_SKIPPED + 5):
        (src / "sub" / f"notes{i:02d}.xyz").write_text("x")
    out = src / "manifest.parquet"
    with caplog.at_level(logging.WARNING):
        skipped: list[str] = []
        build_folder_manifest(src, out, labels="none", skipped=skipped)
        assert len(skipped) == SHOW_SKIPPED + 6
        caplog.clear()
        again: list[str] = []
        build_folder_manifest(src, out, labels="none", skipped=again)  # the manifest is not data
    assert again == skipped
    (msg,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert f"skipped {SHOW_SKIPPED + 6} file(s)" in msg and "song.m4a" in msg
    assert "(and 6 more)" in msg and "ffmpeg" in msg
    assert ".git" not in msg and "hidden" not in msg and "parquet" not in msg


def test_cli_prints_json_only_with_json(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a caption")
    (src / "odd.xyz").write_text("x")
    res = CliRunner().invoke(app, ["data", "folder", str(src)])
    assert res.exit_code == 0, res.output
    assert "{" not in res.stdout
    assert "items: 1" in res.stdout and "skipped_files: odd.xyz" in res.stdout
    res = CliRunner().invoke(app, ["data", "folder", str(src), "--json"])
    summary = json.loads(res.stdout)
    assert summary["items"] == 1 and summary["skipped"] == 1


@pytest.mark.parametrize("ext", [".m4a", ".mp4"])
def test_unsupported_audio_gets_a_hint(tmp_path: Path, ext: str, caplog):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a caption")
    (src / f"clip{ext}").write_bytes(b"x")
    with caplog.at_level(logging.WARNING):
        scan_folder(src, src, labels="none")
    assert f"clip{ext}" in caplog.text and "convert" in caplog.text
