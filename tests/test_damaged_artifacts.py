"""Damaged runs, features and indexes: one clear error naming the folder, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unibind.cli import app
from unibind.features.folder import FeaturesError, load_features, save_features
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.run.folder import Run, RunError
from unibind.search.index import build_index, load_index
from unibind.search.parts import SpaceIndexError
from unibind.training.config import override, preset
from unibind.training.trainer import train


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    f = generate(SyntheticSpec(n_classes=3, groups_per_class=8))
    save_features(root / "feats", f.items, f.arrays, f.meta)
    train(root / "feats", root / "run", config=override(preset("default"), epochs=1))
    build_index(root / "run")
    return root


@pytest.mark.parametrize("what, file, loader, error", [
    ("run", "heads.safetensors", Run.load, RunError),
    ("run", "run.json", Run.load, RunError),
    ("feats", "embeddings.safetensors", load_features, FeaturesError),
    ("feats", "items.parquet", load_features, FeaturesError),
    ("feats", "features.json", load_features, FeaturesError),
    ("run/index", "vectors.safetensors", load_index, SpaceIndexError),
    ("run/index", "index.json", load_index, SpaceIndexError),
])
def test_damaged_files_are_named(built: Path, tmp_path: Path, what: str, file: str, loader,
                                 error: type) -> None:
    copy = tmp_path / what
    shutil.copytree(built / what, copy)
    (copy / file).write_bytes(b"{garbage")
    with pytest.raises(error, match="damaged") as info:
        loader(copy)
    assert str(copy) in str(info.value)


def test_cli_reports_a_damaged_run_without_traceback(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built / "run", tmp_path / "run")
    (tmp_path / "run" / "heads.safetensors").write_bytes(b"\0" * 10)
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--features",
                                   str(built / "feats")])
    assert res.exit_code == 2 and "damaged run folder" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
