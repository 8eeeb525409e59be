from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import unibind.features.extract as extract_mod
from tests.fixtures.media import make_media_folder, write_image
from unibind.cli import app
from unibind.data.folder import build_folder_manifest
from unibind.data.manifest import read_manifest
from unibind.encoders import load_encoder, resolve_profile
from unibind.features.cache import FeatureCache
from unibind.features.folder import load_features, read_errors


def _extract(manifest: Path, out: Path, cache: Path, **kw) -> dict:
    return extract_mod.extract(manifest, out, profile="tiny", cache_dir=cache, **kw)


def test_features_match_direct_encoding(media_folder: Path, tmp_path: Path) -> None:
    manifest = build_folder_manifest(media_folder)
    summary = _extract(manifest, tmp_path / "f", tmp_path / "cache", batch_size=4)
    assert {m: s["computed"] for m, s in summary["modalities"].items()} == \
        {"text": 6, "image": 6, "audio": 6}
    assert summary["errors"] == []
    feats = load_features(tmp_path / "f")
    assert feats.dims == {"text": 32, "image": 24, "audio": 20}
    table = feats.table("audio")
    enc = load_encoder(resolve_profile("tiny")["audio"])
    direct = enc.encode([media_folder.parent / p for p in
                         [os.path.relpath(read_manifest(manifest).resolve(p), media_folder.parent)
                          for p in table["path"]]])
    np.testing.assert_allclose(feats.arrays["audio"][table["row"]], direct, atol=1e-5)
    assert feats.meta["encoders"]["text"]["spec"]["backend"] == "hf-text"
    assert (tmp_path / "f" / feats.meta["manifest"]).resolve() == manifest.resolve()


def test_rerun_computes_nothing_and_loads_no_model(media_folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = build_folder_manifest(media_folder)
    _extract(manifest, tmp_path / "f1", tmp_path / "cache")
    first = load_features(tmp_path / "f1")

    def no_model(*a, **k):
        raise AssertionError("a model was loaded on a fully cached run")

    monkeypatch.setattr(extract_mod, "load_encoder", no_model)
    summary = _extract(manifest, tmp_path / "f2", tmp_path / "cache")
    assert all(s["computed"] == 0 and s["cached"] == 6 for s in summary["modalities"].values())
    assert summary["modalities"]["image"]["dim"] == 24
    second = load_features(tmp_path / "f2")
    for m in first.arrays:
        np.testing.assert_array_equal(first.arrays[m], second.arrays[m])


def test_added_items_only_are_computed(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=2)
    manifest = build_folder_manifest(root)
    _extract(manifest, tmp_path / "f", tmp_path / "cache")
    for k in range(10):  # 10 new images in a new class
        write_image(root / "sun" / f"{k}.png", (250, 250, 0), seed=100 + k)
    summary = _extract(build_folder_manifest(root), tmp_path / "f", tmp_path / "cache")
    assert summary["modalities"]["image"] == {**summary["modalities"]["image"],
                                              "computed": 10, "cached": 6}
    assert summary["modalities"]["text"]["computed"] == 0


def test_bad_items_reported_others_kept(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=1)
    manifest = build_folder_manifest(root)
    table = read_manifest(manifest).table
    (root / "dog" / "0.png").write_bytes(b"garbage")        # corrupt image
    (root / "rain" / "0.wav").write_bytes(b"")              # empty audio file
    os.remove(root / "bell" / "0.wav")                      # missing file
    table = pd.concat([table, pd.DataFrame([{"id": "zero", "modality": "audio", "label": "x",
                                             "path": "zero.wav"}])])
    import soundfile as sf
    sf.write(root / "zero.wav", np.zeros(0, np.float32), 16000)
    table.to_csv(root / "m2.csv", index=False)  # (write_manifest would refuse the missing file)
    summary = _extract(root / "m2.csv", tmp_path / "f", tmp_path / "cache")
    reasons = {e["id"]: e["reason"] for e in summary["errors"]}
    assert set(reasons) == {"dog/0.png", "rain/0.wav", "bell/0.wav", "zero"}
    assert "cannot decode image" in reasons["dog/0.png"]
    assert "unreadable" in reasons["bell/0.wav"]
    assert "zero-length" in reasons["zero"]
    feats = load_features(tmp_path / "f")
    assert len(feats.items) == 4 + 2  # 3 texts + 2 images + 1 audio survive
    assert {e["id"] for e in read_errors(tmp_path / "f")} == set(reasons)


def test_cli_json_summary_and_exit_status(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=1)
    manifest = build_folder_manifest(root)
    runner = CliRunner()
    args = ["extract", str(manifest), "--out", str(tmp_path / "f"), "--profile", "tiny",
            "--cache-dir", str(tmp_path / "c"), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["modalities"]["audio"]["computed"] == 3
    assert set(summary["modalities"]["text"]) >= {"computed", "cached", "dim"}
    assert summary["errors"] == [] and summary["out"] == str(tmp_path / "f")
    (root / "dog" / "0.png").write_bytes(b"garbage")
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert [e["id"] for e in summary["errors"]] == ["dog/0.png"]


KILLER = """
import os, signal, sys
import unibind.features.extract as ex
import unibind.features.work as work
calls = {"n": 0}
real = work.run_batch
def dying(encoder, prepared, cache):
    calls["n"] += 1
    if calls["n"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(encoder, prepared, cache)
work.run_batch = dying
ex.extract(sys.argv[1], sys.argv[2], profile="tiny", cache_dir=sys.argv[3], batch_size=2,
           workers=int(sys.argv[4]))
"""


def test_resume_after_kill_recomputes_no_finished_batch(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=4)   # 12 items per modality
    manifest = build_folder_manifest(root)
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(manifest), str(tmp_path / "f"),
                           str(cache), "2"], env={**os.environ}, capture_output=True)
    assert proc.returncode == -9
    assert not (tmp_path / "f").exists()  # no half-written features folder
    summary = _extract(manifest, tmp_path / "f", cache, batch_size=2)
    done_before = summary["modalities"]["text"]["cached"]
    assert done_before == 4  # text goes first: two finished batches of 2 survived the kill
    assert summary["modalities"]["text"]["computed"] == 8
    feats = load_features(tmp_path / "f")
    fresh = _extract(manifest, tmp_path / "g", tmp_path / "fresh-cache", batch_size=2)
    assert fresh["errors"] == []
    np.testing.assert_allclose(load_features(tmp_path / "g").arrays["text"],
                               feats.arrays["text"], atol=1e-6)


def test_cache_compaction_keeps_every_vector(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "ab" * 32)
    rng = np.random.default_rng(0)
    vectors = {f"{i:064x}": rng.standard_normal(4).astype(np.float32) for i in range(30)}
    for key, vec in vectors.items():
        cache.put_many({key: vec})
    cache.compact(above=10)
    assert len(list(cache.folder.glob("*.safetensors"))) == 1
    reopened = FeatureCache(tmp_path, "ab" * 32)
    got = reopened.get_many(vectors)
    assert all(np.array_equal(got[k], v) for k, v in vectors.items())


def test_unreachable_hub_model_fails_with_a_hint(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=1)
    manifest = build_folder_manifest(root)
    with pytest.raises(OSError, match="(?s)cannot load the text encoder 'bert-base-uncased'.*"
                                      "--profile offline"):
        extract_mod.extract(manifest, tmp_path / "f", profile="seed", cache_dir=tmp_path / "c")
    assert not (tmp_path / "f").exists()
