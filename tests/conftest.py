"""Shared fixtures: an isolated unibind cache, and a small synthetic media dataset on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see unibind/cli/__init__.py

LABELS = {"dog": (200, 60, 40), "rain": (40, 80, 200), "bell": (230, 200, 40)}
CAPTIONS = {"dog": "a dog barking in the yard", "rain": "rain falling on a roof",
            "bell": "a church bell ringing"}
TONES = {"dog": 440.0, "rain": 0.0, "bell": 880.0}


@pytest.fixture(scope="session", autouse=True)
def unibind_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own cache (tiny models, features): nothing leaks to ~/.cache.

    Set ``UNIBIND_TEST_CACHE`` to reuse one across sessions (faster local reruns)."""
    root = Path(os.environ.get("UNIBIND_TEST_CACHE") or tmp_path_factory.mktemp("unibind-cache"))
    os.environ["UNIBIND_CACHE"] = str(root)
    return root


def write_tone(path: Path, freq: float, seconds: float, rate: int = 22050, seed: int = 0) -> Path:
    """A sine tone (or noise when freq is 0) with a little noise, as 16-bit WAV."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) if freq else 0.3 * rng.standard_normal(t.size)
    wave = wave + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
    return path


def write_image(path: Path, color: tuple[int, int, int], seed: int = 0,
                size: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.integers(-30, 30, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def make_media_folder(root: Path, per_label: int = 2, seconds: float = 1.5) -> Path:
    """``root/<label>/<k>.{png,wav,txt}`` for three labels: image k + caption k + audio k."""
    for li, (label, color) in enumerate(LABELS.items()):
        for k in range(per_label):
            seed = 10 * li + k
            write_image(root / label / f"{k}.png", color, seed=seed)
            write_tone(root / label / f"{k}.wav", TONES[label] * (1 + 0.05 * k), seconds, seed=seed)
            (root / label / f"{k}.txt").write_text(f"{CAPTIONS[label]}, take {k}\n")
    return root


def tiny_features(root: Path, per_label: int = 6, seconds: float = 0.5) -> Path:
    """``root/feats``: a media folder (``root/dataset``) extracted with the tiny profile."""
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract

    manifest = build_folder_manifest(make_media_folder(root / "dataset", per_label, seconds))
    extract(manifest, root / "feats", profile="tiny", cache_dir=root / "cache")
    return root / "feats"


@pytest.fixture
def media_folder(tmp_path: Path) -> Path:
    return make_media_folder(tmp_path / "dataset")
