"""The search tests share one tiny-profile indexed run per module (``run_path``, ``space``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.media import make_media_folder
from unibind.search.index import build_index
from unibind.search.space import Space


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    root = tmp_path_factory.mktemp("tiny-search")
    make_media_folder(root / "data", per_label=3)
    manifest = build_folder_manifest(root / "data", root / "manifest.parquet")
    extract(manifest, root / "features", profile="tiny")
    train(root / "features", root / "run", config=override(preset("default"), epochs=2))
    build_index(root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def space(run_path: Path) -> Space:
    return Space.load(run_path)
