"""Decoding bounded by what it produces: header checks before decoding, block-wise mono reads equal
to a whole-file read, images decoded at a reduced size, sniffing, and our own messages."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from unibind.media.decode import (
    AUDIO_BLOCK,
    DecodeFailed,
    MediaError,
    audio_header,
    load_audio,
    load_image,
    sniff_audio,
    sniff_image,
)


def wav(path: Path, rate: int, frames: int, channels: int = 1) -> Path:
    data = bytes(2 * frames * channels)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                     struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


@pytest.mark.parametrize("rate,channels,needle", [
    (1, 1, "sample rate 1 Hz is outside 2,000-384,000 Hz"),
    (1_000_000, 1, "sample rate 1000000 Hz"),
    (8000, 100, "100 channels (1-64 accepted)"),
])
def test_headers_no_real_recording_has(tmp_path: Path, rate: int, channels: int, needle: str):
    path = wav(tmp_path / "x.wav", rate, 4, channels)
    with pytest.raises(MediaError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        audio_header(path)
    with pytest.raises(MediaError, match="outside|channels"):
        load_audio(path, 16000)
    with pytest.raises(MediaError):
        sniff_audio(path)  # a sound, but not one to decode


def test_blockwise_mono_equals_whole_read(tmp_path: Path):
    rng = np.random.default_rng(0)
    frames = 2 * AUDIO_BLOCK + 123
    data = (0.1 * rng.standard_normal((frames, 3))).astype(np.float32)
    sf.write(tmp_path / "s.wav", data, 16000, subtype="FLOAT")
    got = load_audio(tmp_path / "s.wav", 16000)
    np.testing.assert_allclose(got, data.mean(axis=1), atol=1e-7)
    assert sniff_audio(tmp_path / "s.wav") == {"audio_seconds": pytest.approx(frames / 16000)}
    assert load_audio(tmp_path / "s.wav", 8000).shape == (pytest.approx(frames / 2, abs=2),)


def test_too_long_is_refused_from_the_header(tmp_path: Path):
    sf.write(tmp_path / "long.flac", np.zeros(2000 * 30, np.float32), 2000)  # 30 s, few KB
    with pytest.raises(MediaError, match="30.0 s long, above the limit of 10 s"):
        load_audio(tmp_path / "long.flac", 16000, max_seconds=10)


def test_own_messages_never_the_decoders(tmp_path: Path):
    (tmp_path / "x.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(DecodeFailed) as err:
        load_audio(tmp_path / "x.wav", 16000)
    assert str(err.value) == "cannot decode audio: not a readable sound file"
    good = tmp_path / "g.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    (tmp_path / "t.png").write_bytes(good.read_bytes()[:80])
    with pytest.raises(DecodeFailed) as err:
        load_image(tmp_path / "t.png")
    assert str(err.value).startswith("cannot decode image: corrupt image")
    assert "Pillow" not in str(err.value) and "truncated" in str(err.value)
    (tmp_path / "n.png").write_bytes(b"hello")
    assert sniff_image(tmp_path / "n.png") is None and sniff_audio(tmp_path / "n.png") is None


@pytest.mark.parametrize("fmt,mode", [("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"),
                                      ("PNG", "L")])
def test_images_decode_at_reduced_size(tmp_path: Path, fmt: str, mode: str):
    path = tmp_path / f"big.{fmt.lower()}"
    img = Image.linear_gradient("L").resize((3000, 1000)).convert(mode)
    img.save(path, format=fmt)
    assert sniff_image(path) == {"pixels": 3_000_000.0}
    small = load_image(path, max_side=512)
    assert small.mode == "RGB" and max(small.size) <= 512 and max(small.size) >= 256
    assert abs(small.size[0] / small.size[1] - 3) < 0.1
    full = load_image(path)
    assert full.size == (3000, 1000)
    # the reduced image is the full one, smaller: same mean colour
    assert abs(np.asarray(small, float).mean() - np.asarray(full, float).mean()) < 3
