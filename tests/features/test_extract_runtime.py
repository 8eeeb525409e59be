"""Extraction's runtime choice: fp32 ONNX vectors share cache entries with torch (they agree
within the verified tolerance), int8 ones have their own; bad choices are one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from unibind.cli import app
from unibind.data.folder import build_folder_manifest
from unibind.errors import UsageError
from unibind.features.extract import extract
from unibind.features.folder import load_features


def test_onnx_and_torch_share_the_cache_int8_does_not(media_folder: Path, tmp_path: Path) -> None:
    manifest = build_folder_manifest(media_folder)
    cache = tmp_path / "cache"
    torch_run = extract(manifest, tmp_path / "t", profile="tiny", cache_dir=cache,
                        runtime="torch")
    onnx_run = extract(manifest, tmp_path / "o", profile="tiny", cache_dir=cache,
                       runtime="onnx")
    assert all(s["computed"] == 0 for s in onnx_run["modalities"].values())
    fresh = extract(manifest, tmp_path / "f", profile="tiny", cache_dir=tmp_path / "c2",
                    runtime="onnx")
    assert all(s["computed"] == 6 for s in fresh["modalities"].values())
    a, b = load_features(tmp_path / "t"), load_features(tmp_path / "f")
    for m in ("text", "image", "audio"):
        x, y = a.arrays[m], b.arrays[m]
        assert ((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
                ).min() >= 0.9999
    int8 = extract(manifest, tmp_path / "q", profile="tiny", cache_dir=cache,
                   runtime="auto", quantize="int8")
    assert all(s["computed"] == 6 for s in int8["modalities"].values())
    meta = load_features(tmp_path / "q").meta["encoders"]["text"]
    assert meta["spec"]["options"]["quantize"] == "int8"
    assert meta["fingerprint"] != load_features(tmp_path / "t").meta["encoders"]["text"][
        "fingerprint"]
    assert torch_run["modalities"]["text"]["computed"] == 6


def test_bad_runtime_choices(media_folder: Path, tmp_path: Path) -> None:
    manifest = build_folder_manifest(media_folder)
    with pytest.raises(UsageError, match="runtime"):
        extract(manifest, tmp_path / "f", profile="tiny", runtime="tensorrt")
    with pytest.raises(UsageError, match="int8 runs in ONNX Runtime"):
        extract(manifest, tmp_path / "f", profile="tiny", runtime="torch", quantize="int8")
    res = CliRunner().invoke(app, ["extract", str(manifest), "--out", str(tmp_path / "f"),
                                   "--profile", "tiny", "--quantize", "int4"])
    assert res.exit_code != 0 and "int4" in res.output and "Traceback" not in res.output
