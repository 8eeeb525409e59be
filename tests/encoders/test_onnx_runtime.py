"""ONNX Runtime execution: every backend's graph matches torch, graphs are cached, shared safely
between processes, and a graph that cannot be trusted falls back (auto) or fails (onnx)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.media import write_image, write_tone
from unibind.encoders import EncoderSpec, load_encoder, resolve_profile
from unibind.encoders import onnx_runtime as ort_mod
from unibind.encoders.onnx_runtime import GraphExportError, graph_folder, with_quantize
from unibind.encoders.tiny import tiny_model_dir
from unibind.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def tiny_specs() -> dict[str, EncoderSpec]:
    tiny = resolve_profile("tiny")
    bert = tiny["text"].source
    return {"bert-pooler": tiny["text"],
            "bert-mean": EncoderSpec("text", "hf-text", bert,
                                     options={"pooling": "mean", "max_length": 64}),
            "clip-image": tiny["image"], "clap-audio": tiny["audio"],
            "clip-text": EncoderSpec("text", "hf-clip-text", str(tiny_model_dir("clip-aligned"))),
            "clap-text": EncoderSpec("text", "hf-clap-text", str(tiny_model_dir("clap-aligned")))}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    root = tmp_path_factory.mktemp("media")
    images = [write_image(root / f"{i}.png", (40 * i, 100, 200 - 30 * i), seed=i,
                          size=(30 + 23 * i, 40 + 5 * i)) for i in range(4)]
    audio = [write_tone(root / f"{i}.wav", 300.0 * (i + 1), s, seed=i)
             for i, s in enumerate([0.4, 2.0, 3.1, 5.5])]
    texts = ["a dog", "rain falling on a tin roof at night", "bell", "a cat and a dog " * 30]
    return {"text": texts, "image": images, "audio": audio}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("name", list(tiny_specs()))
def test_graph_matches_torch(name: str, inputs: dict) -> None:
    spec = tiny_specs()[name]
    torch_enc = load_encoder(spec, device="cpu")
    onnx_enc = load_encoder(spec, device="cpu", runtime="onnx")
    assert (torch_enc.runtime, onnx_enc.runtime) == ("torch", "onnx")
    items = inputs[spec.modality]
    want = torch_enc.encode(items, batch_size=8)  # padded / several windows in one batch
    got = onnx_enc.encode(items, batch_size=8)
    assert got.shape == want.shape and got.dtype == np.float32
    assert cosines(got, want).min() >= 0.9999
    one_by_one = np.concatenate([onnx_enc.encode([x]) for x in items])
    np.testing.assert_allclose(one_by_one, got, atol=1e-4)


def test_auto_is_onnx_on_cpu_and_torch_elsewhere() -> None:
    import torch

    assert ort_mod.graph_wanted("auto", torch.device("cpu"), torch.float32)
    assert not ort_mod.graph_wanted("auto", torch.device("cuda"), torch.float16)
    assert not ort_mod.graph_wanted("torch", torch.device("cpu"), torch.float32)
    with pytest.raises(UsageError, match="CPU"):
        ort_mod.graph_wanted("onnx", torch.device("cuda"), torch.float32)


def test_graphs_are_cached_not_reexported(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_specs()["bert-pooler"]
    load_encoder(spec, device="cpu", runtime="onnx")  # exported (or already cached)

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(ort_mod, "export_core", no_export)
    enc = load_encoder(spec, device="cpu", runtime="onnx")
    assert enc.runtime == "onnx"
    meta = json.loads((graph_folder(enc) / "meta.json").read_text())
    assert meta["min_cosine"] >= ort_mod.COSINE_MIN and meta["onnxruntime"]


def test_failed_export_falls_back_under_auto_and_fails_under_onnx(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    spec = tiny_specs()["bert-mean"]
    monkeypatch.setenv("UNIBIND_CACHE", str(tmp_path))  # a fresh graph cache
    calls = []

    def broken(*args: object) -> None:
        calls.append(1)
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(ort_mod, "export_core", broken)
    with pytest.raises(GraphExportError, match=f"hf-text:{spec.source}.*unsupported operator"):
        load_encoder(spec, device="cpu", runtime="onnx")
    assert load_encoder(spec, device="cpu", runtime="auto").runtime == "torch"
    assert "running it in torch" in caplog.text
    assert calls == [1]  # the failure is remembered, not retried on every load


def test_mismatching_graph_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_specs()["clip-image"]  # the quickest export
    monkeypatch.setenv("UNIBIND_CACHE", str(tmp_path))
    monkeypatch.setattr(ort_mod, "min_cosine", lambda a, b: 0.5)
    with pytest.raises(GraphExportError, match="differs from torch.*0.5000000"):
        load_encoder(spec, device="cpu", runtime="onnx")


def test_int8_has_its_own_fingerprint_and_stays_close() -> None:
    spec = tiny_specs()["bert-pooler"]
    int8 = with_quantize(spec, "int8")
    enc = load_encoder(int8, device="cpu", runtime="auto")
    assert enc.runtime == "onnx" and enc.fingerprint != load_encoder(spec).fingerprint
    texts = ["a dog barking", "rain", "the bell and the car engine"]
    assert cosines(enc.encode(texts), load_encoder(spec).encode(texts)).min() > 0.99
    with pytest.raises(UsageError, match="int8"):
        load_encoder(int8, device="cpu", runtime="torch")


@pytest.mark.slow
def test_two_processes_export_once_and_quietly(tmp_path: Path) -> None:
    """Two real processes load the same model with a cold graph cache at the same time: one
    exports, the other waits on the lock and uses its graph; neither prints exporter noise."""
    spec = json.dumps(tiny_specs()["clip-image"].to_dict())
    script = textwrap.dedent(f"""
        import json, logging, numpy as np
        logging.basicConfig(level=logging.INFO, format="LOG %(name)s %(message)s")
        from unibind.encoders import load_encoder
        enc = load_encoder(json.loads({spec!r}), device="cpu", runtime="onnx")
        print("VEC", float(enc.encode([np.full((9, 7, 3), 200, np.uint8)])[0][0]))
    """)
    env = {**os.environ, "UNIBIND_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT / "src"), "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    logs = "".join(o + e for o, e in outs)
    assert logs.count("exported the image encoder") == 1
    vecs = {line for o, _ in outs for line in o.splitlines() if line.startswith("VEC")}
    assert len(vecs) == 1
    noise = [ln for _, e in outs for ln in e.splitlines()
             if ln.strip() and not ln.startswith("LOG ") and "Loading weights" not in ln]
    assert noise == []
    assert len(list((tmp_path / "graphs").glob("*/model.onnx"))) == 1


def test_quantized_spec_runs_its_graph_wherever_loaded() -> None:
    """Later stages (evaluate's zero-shot, bind) load the run's spec without a runtime: an
    int8 spec still gets its int8 graph, on the CPU."""
    int8 = with_quantize(tiny_specs()["bert-pooler"], "int8")
    enc = load_encoder(int8.to_dict())
    assert enc.runtime == "onnx" and enc.device.type == "cpu"
