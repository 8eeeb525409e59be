"""Local engine scheduling: worker counts, device-side preprocessing, auto batch size / dtype /
device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import unibind.features.extract as extract_mod
from tests.fixtures.media import make_media_folder, write_tone
from unibind.data.folder import build_folder_manifest
from unibind.data.manifest import read_manifest
from unibind.encoders import load_encoder, resolve_profile
from unibind.encoders.spec import EncoderSpec
from unibind.features import local_engine, work
from unibind.features.folder import load_features
from unibind.util import runtime


def test_embeddings_identical_for_any_worker_count(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=3)
    (root / "dog" / "1.png").write_bytes(b"not an image")
    manifest = build_folder_manifest(root)
    runs = {}
    for workers in (1, 2, 5):
        summary = extract_mod.extract(manifest, tmp_path / f"f{workers}", profile="tiny",
                                      cache_dir=tmp_path / f"c{workers}", batch_size=2,
                                      workers=workers, device="cpu")
        assert [e["id"] for e in summary["errors"]] == ["dog/1.png"]
        assert "cannot decode image" in summary["errors"][0]["reason"]
        assert summary["errors"][0]["path"].endswith("1.png")
        runs[workers] = load_features(tmp_path / f"f{workers}")
    for workers in (2, 5):
        assert runs[workers].items.equals(runs[1].items)
        for m, array in runs[1].arrays.items():
            np.testing.assert_array_equal(runs[workers].arrays[m], array)


def test_workers_run_in_parallel_threads_bounded(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding runs on worker threads (not the caller's), never more than 2 x workers ahead."""
    import threading

    enc = load_encoder(resolve_profile("tiny")["text"], device="cpu")
    seen, ahead, lock = set(), [], threading.Lock()
    state = {"prepared": 0, "run": 0}
    real_prepare, real_run = work.prepare_batch, work.run_batch

    def prepare(encoder, chunk, pin_memory=False):
        with lock:
            seen.add(threading.current_thread().name)
            state["prepared"] += 1
            ahead.append(state["prepared"] - state["run"])
        return real_prepare(encoder, chunk, pin_memory)

    def run(encoder, prepared, cache):
        state["run"] += 1
        return real_run(encoder, prepared, cache)

    monkeypatch.setattr(work, "prepare_batch", prepare)
    monkeypatch.setattr(work, "run_batch", run)
    from unibind.features.cache import FeatureCache

    items = [(f"t{i}", f"d{i}", f"text number {i}") for i in range(40)]
    vectors, errors = local_engine.encode_local(enc, work.plan_batches(items, 2),
                                                FeatureCache(tmp_path, "x" * 64), workers=3)
    assert len(vectors) == 40 and not errors
    assert threading.current_thread().name not in seen and len(seen) >= 2
    assert max(ahead) <= 2 * 3 + 1


def _jpeg(path: Path, size: tuple[int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)  # smooth content, as photos are
    Image.fromarray(base).resize(size, Image.BICUBIC).save(path, quality=95)
    return path


def test_device_image_preprocessing_matches_processor(tmp_path: Path) -> None:
    spec = resolve_profile("tiny")["image"]
    host = load_encoder(spec, device="cpu")
    dev = load_encoder(EncoderSpec.from_dict({**spec.to_dict(), "options": {
        **spec.options, "preprocess": "device"}}), device="cpu")
    paths = [_jpeg(tmp_path / f"{i}.jpg", size, i)
             for i, size in enumerate([(640, 480), (300, 500), (33, 40), (32, 32)])]
    a = host.collate([host.load(p) for p in paths])
    raw = [dev.load(p) for p in paths]
    assert raw[0].dtype == torch.uint8 and raw[0].shape[1] < 480  # JPEG drafted smaller
    b = torch.stack([dev.pixels_on_device(x) for x in dev.collate(raw)])
    assert a.shape == b.shape
    assert (a - b).abs().mean() < 0.03 and (a - b).abs().max() < 0.5
    va, vb = host.forward_batch(a), dev.forward_batch(dev.collate(raw))
    cos = torch.nn.functional.cosine_similarity(va, vb)
    assert cos.min() > 0.99, cos
    assert dev.fingerprint != host.fingerprint  # its own cache namespace


def test_device_clap_log_mel_matches_host_path(tmp_path: Path) -> None:
    spec = resolve_profile("tiny")["audio"]
    host = load_encoder(spec, device="cpu")
    dev = load_encoder(EncoderSpec.from_dict({**spec.to_dict(), "options": {
        **spec.options, "preprocess": "device"}}), device="cpu")
    paths = [write_tone(tmp_path / f"{i}.wav", 300.0 * (i + 1), s, seed=i)
             for i, s in enumerate([0.7, 3.1, 5.0])]
    va = host.forward_batch(host.collate([host.load(p) for p in paths]))
    vb = dev.forward_batch(dev.collate([dev.load(p) for p in paths]))
    np.testing.assert_allclose(vb.detach().numpy(), va.detach().numpy(), atol=1e-5)


def test_extract_with_device_preprocessing(tmp_path: Path) -> None:
    manifest = build_folder_manifest(make_media_folder(tmp_path / "d", per_label=1))
    kw = {"profile": "tiny", "device": "cpu", "cache_dir": tmp_path / "c"}
    host = extract_mod.extract(manifest, tmp_path / "h", **kw)
    dev = extract_mod.extract(manifest, tmp_path / "v", preprocess="device", **kw)
    assert dev["modalities"]["image"]["computed"] == 3  # not served from the host cache
    assert dev["modalities"]["text"]["cached"] == 3
    assert host["errors"] == dev["errors"] == []
    feats = load_features(tmp_path / "v")
    assert feats.meta["encoders"]["image"]["spec"]["options"]["preprocess"] == "device"


def test_largest_fitting_batch() -> None:
    calls = []

    def fits(n: int) -> bool:
        calls.append(n)
        return n <= 100

    assert work.largest_fitting(fits, start=8, cap=1024) == 64
    assert calls == [8, 16, 32, 64, 128]
    assert work.largest_fitting(lambda n: True, start=8, cap=64) == 64
    assert work.largest_fitting(lambda n: False, start=8) == 8


def test_auto_batch_on_cpu_is_the_default(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = []
    real = work.plan_batches

    def spy(items, size):
        sizes.append(size)
        return real(items, size)

    monkeypatch.setattr(work, "plan_batches", spy)
    root = make_media_folder(tmp_path / "d", per_label=1)
    extract_mod.extract(build_folder_manifest(root), tmp_path / "f", profile="tiny",
                        cache_dir=tmp_path / "c", device="cpu")
    assert sizes == [extract_mod.DEFAULT_BATCH] * 3
    with pytest.raises(ValueError, match="batch size"):
        extract_mod.extract(build_folder_manifest(root), tmp_path / "g", profile="tiny",
                            batch_size="big")


def test_dtype_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime.pick_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.pick_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.pick_dtype(torch.device("cuda")) == torch.float16
    assert runtime.pick_dtype(torch.device("cuda"), "fp32") == torch.float32


def test_library_device_defaults_to_auto(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def spy(preference=None):
        asked.append(preference)
        return torch.device("cpu")

    monkeypatch.setattr(runtime, "pick_device", spy)
    monkeypatch.setattr(extract_mod, "pick_device", spy)
    assert load_encoder(resolve_profile("tiny")["text"]).device.type == "cpu"
    assert asked == [None]
    root = make_media_folder(tmp_path / "d", per_label=1)
    table = read_manifest(build_folder_manifest(root)).table
    table[table.modality == "text"].to_csv(root / "t.csv", index=False)
    extract_mod.extract(root / "t.csv", tmp_path / "f", profile="tiny", cache_dir=tmp_path / "c")
    assert asked[1] is None
