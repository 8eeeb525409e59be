"""The Ray engine: same shards, features, errors and embeddings as the local engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import unibind.features.extract as extract_mod
from tests.fixtures.media import make_media_folder
from unibind.cli import app
from unibind.data.folder import build_folder_manifest
from unibind.data.manifest import read_manifest
from unibind.features.cache import FeatureCache
from unibind.features.folder import load_features

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 2**20)
    yield ray
    ray.shutdown()


def _bad_manifest(root: Path) -> Path:
    table = read_manifest(build_folder_manifest(root)).table
    (root / "dog" / "0.png").write_bytes(b"garbage")
    os.remove(root / "bell" / "1.wav")
    table.to_csv(root / "m.csv", index=False)
    return root / "m.csv"


def test_ray_matches_local_engine(ray_cluster, tmp_path: Path) -> None:
    manifest = _bad_manifest(make_media_folder(tmp_path / "d", per_label=2))
    kw = {"profile": "tiny", "batch_size": 3, "device": "cpu"}
    local = extract_mod.extract(manifest, tmp_path / "fl", cache_dir=tmp_path / "cl", **kw)
    remote = extract_mod.extract(manifest, tmp_path / "fr", cache_dir=tmp_path / "cr",
                                 engine="ray", **kw)
    assert remote["errors"] == local["errors"]
    assert {e["id"] for e in remote["errors"]} == {"dog/0.png", "bell/1.wav"}
    assert remote["modalities"] == local["modalities"]
    a, b = load_features(tmp_path / "fl"), load_features(tmp_path / "fr")
    pd.testing.assert_frame_equal(a.items, b.items)
    for m in a.arrays:
        np.testing.assert_allclose(b.arrays[m], a.arrays[m], rtol=0, atol=1e-6)
    # the same shards: one per batch, same digests, in the same cache layout
    for m, info in a.meta["encoders"].items():
        left = FeatureCache(tmp_path / "cl", info["fingerprint"])
        right = FeatureCache(tmp_path / "cr", info["fingerprint"])
        assert set(left._where) == set(right._where)
        assert len(set(left._where.values())) == len(set(right._where.values()))


def _texts(root: Path, n: int, name: str) -> Path:
    table = read_manifest(build_folder_manifest(root)).table
    table[table.modality == "text"].head(n).to_csv(root / name, index=False)
    return root / name


def test_ray_resumes_from_finished_shards(ray_cluster, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_media_folder(tmp_path / "d", per_label=3)
    kw = {"profile": "tiny", "batch_size": 2, "device": "cpu", "cache_dir": tmp_path / "c",
          "engine": "ray"}
    extract_mod.extract(_texts(root, 4, "part.csv"), tmp_path / "f0", **kw)  # then a "crash"
    summary = extract_mod.extract(_texts(root, 9, "all.csv"), tmp_path / "f", **kw)
    assert summary["modalities"]["text"] == {**summary["modalities"]["text"], "cached": 4,
                                             "computed": 5}

    def no_model(*a, **k):
        raise AssertionError("a model was loaded on a fully cached run")

    monkeypatch.setattr(extract_mod, "load_encoder", no_model)
    again = extract_mod.extract(root / "all.csv", tmp_path / "g", **kw)
    assert again["modalities"]["text"]["computed"] == 0
    np.testing.assert_array_equal(load_features(tmp_path / "g").arrays["text"],
                                  load_features(tmp_path / "f").arrays["text"])


def test_cli_engine_ray(ray_cluster, tmp_path: Path) -> None:
    manifest = _texts(make_media_folder(tmp_path / "d", per_label=1), 3, "t.csv")
    res = CliRunner().invoke(app, ["extract", str(manifest), "--out", str(tmp_path / "f"),
                                   "--profile", "tiny", "--cache-dir", str(tmp_path / "c"),
                                   "--engine", "ray", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["modalities"]["text"]["computed"] == 3 and summary["errors"] == []


def test_unknown_engine_is_a_usage_error(tmp_path: Path) -> None:
    manifest = build_folder_manifest(make_media_folder(tmp_path / "d", per_label=1))
    res = CliRunner().invoke(app, ["extract", str(manifest), "--out", str(tmp_path / "f"),
                                   "--profile", "tiny", "--engine", "spark"])
    assert res.exit_code == 2 and "unknown engine" in res.output


def test_connection_failure_is_one_line_naming_the_address(monkeypatch):
    import ray

    from unibind.features import ray_engine

    def refuse(**kwargs):
        raise ConnectionError("Failed to connect to GCS: UNAUTHENTICATED: missing auth token")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ray_engine.RayConnectionError) as info:
        with ray_engine._cluster("10.0.0.5:6379"):
            pass
    msg = str(info.value)
    assert "10.0.0.5:6379" in msg and "RAY_AUTH_MODE=token" in msg and "\n" not in msg


def test_extract_interrupted_says_how_many_batches_were_saved(tmp_path, monkeypatch):
    from unibind.errors import Interrupted
    from unibind.features import local_engine, work

    calls = {"n": 0}
    real = work.run_batch

    def stop_on_third(encoder, prepared, cache):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(encoder, prepared, cache)

    monkeypatch.setattr(work, "run_batch", stop_on_third)
    from tests.fixtures.media import make_media_folder
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract

    manifest = build_folder_manifest(make_media_folder(tmp_path / "d", per_label=3),
                                     labels="dirs")
    with pytest.raises(Interrupted) as info:
        extract(manifest, tmp_path / "f", profile="tiny", batch_size=2,
                cache_dir=tmp_path / "cache")
    assert info.value.exit_code == 130
    assert str(info.value) == f"interrupted; {info.value.batches} batches saved, re-run to resume"
    assert info.value.batches >= 2
    assert local_engine  # the local engine raised it


def test_unreachable_address_fails_at_once():
    import socket
    import time

    from unibind.features import ray_engine

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ray_engine.RayConnectionError, match=f"127.0.0.1:{port}"):
        ray_engine.check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 5
    ray_engine.check_reachable("auto")  # left to Ray
