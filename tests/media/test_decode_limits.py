"""A decoder failure or an input over a limit is that item's error; the run goes on."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import unibind.features.extract as extract_mod
from tests.fixtures.media import make_media_folder
from unibind.cli import app
from unibind.data.folder import build_folder_manifest
from unibind.features.folder import load_features
from unibind.media.decode import MediaError, MediaLimits, load_audio, load_image


def write_png_bomb(path: Path, side: int = 60_000) -> Path:
    """A 1-bit ``side`` x ``side`` PNG of a few KB: its header alone trips Pillow's bomb check."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" + b"\0" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(200)) + comp.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    path.write_bytes(png)
    return path


def test_bomb_and_limits_are_item_errors(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=2)
    write_png_bomb(root / "dog" / "bomb.png")
    summary = extract_mod.extract(build_folder_manifest(root), tmp_path / "f", profile="tiny",
                                  cache_dir=tmp_path / "cache")
    errors = {e["path"]: e["reason"] for e in summary["errors"]}
    assert list(errors) == ["dog/bomb.png"]
    assert errors["dog/bomb.png"] == ("image has 3,600,000,000 pixels, above the limit of "
                                      "89,478,485 (raise --max-pixels to accept it)")
    feats = load_features(tmp_path / "f")
    assert feats.meta["counts"] == {"text": 6, "image": 6, "audio": 6}


def test_max_pixels_and_audio_seconds_cli(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=1, seconds=1.5)
    manifest = build_folder_manifest(root)
    res = CliRunner().invoke(app, ["extract", str(manifest), "--out", str(tmp_path / "f"),
                                   "--profile", "tiny", "--cache-dir", str(tmp_path / "c"),
                                   "--max-pixels", "1000", "--max-audio-seconds", "1", "--json"])
    assert res.exit_code == 1, res.output
    feats = load_features(tmp_path / "f")
    assert feats.meta["counts"] == {"text": 3}
    out = res.stdout
    assert out.count("above the limit of 1,000 (raise --max-pixels") == 3
    assert out.count("1.5 s long, above the limit of 1 s (raise --max-audio-seconds") == 3


def test_any_decoder_exception_is_the_items_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_media_folder(tmp_path / "d", per_label=2)
    real = extract_mod.load_encoder

    def flaky(spec, **kw):
        enc = real(spec, **kw)
        load = enc.load

        def broken(item):
            if str(item).endswith("rain/1.png"):
                raise ZeroDivisionError("decoder bug")
            return load(item)
        enc.load = broken
        return enc

    monkeypatch.setattr(extract_mod, "load_encoder", flaky)
    summary = extract_mod.extract(build_folder_manifest(root), tmp_path / "f", profile="tiny",
                                  cache_dir=tmp_path / "cache")
    assert [(e["path"], e["reason"]) for e in summary["errors"]] == \
        [("rain/1.png", "cannot decode: ZeroDivisionError: decoder bug")]
    assert load_features(tmp_path / "f").meta["counts"]["image"] == 5


def test_media_checks_header_before_decoding(tmp_path: Path) -> None:
    bomb = write_png_bomb(tmp_path / "b.png")
    with pytest.raises(MediaError, match="3,600,000,000 pixels"):
        load_image(bomb)
    small = tmp_path / "s.png"
    Image.new("RGB", (50, 30)).save(small)
    with pytest.raises(MediaError, match="50x30 = 1,500 pixels, above the limit of 1,000"):
        load_image(small, max_pixels=1000)
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(bomb, max_pixels=10**11)
    (tmp_path / "x.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(MediaError, match="cannot decode audio"):
        load_audio(tmp_path / "x.wav", 16000)
    with pytest.raises(MediaError, match="positive"):
        MediaLimits(max_pixels=0)
