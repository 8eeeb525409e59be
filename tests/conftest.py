"""Shared fixtures: an isolated unibind cache, and a small synthetic media dataset on disk
(helpers in ``tests/fixtures``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.media import make_media_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see unibind/cli/__init__.py

@pytest.fixture(scope="session", autouse=True)
def unibind_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own cache (tiny models, features): nothing leaks to ~/.cache.

    Set ``UNIBIND_TEST_CACHE`` to reuse one across sessions (faster local reruns)."""
    root = Path(os.environ.get("UNIBIND_TEST_CACHE") or tmp_path_factory.mktemp("unibind-cache"))
    os.environ["UNIBIND_CACHE"] = str(root)
    return root


@pytest.fixture
def media_folder(tmp_path: Path) -> Path:
    return make_media_folder(tmp_path / "dataset")
