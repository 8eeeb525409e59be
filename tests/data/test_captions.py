"""Captions with a tiny random BLIP saved locally (same from_pretrained path), cache and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fixtures import data_builders as fx
from unibind.cli import app
from unibind.data import captions as cap
from unibind.data.captions import (
    REFERENCE_PROMPT,
    CaptionConfig,
    CaptionError,
    caption_manifest,
    load_captioner,
)
from unibind.data.manifest import read_manifest, write_manifest


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    return fx.tiny_blip(tmp_path_factory.mktemp("models") / "tiny-blip")


@pytest.fixture()
def images(tmp_path):
    """An image manifest: 4 good images (2 classes, one duplicate content) and 1 corrupt."""
    root = tmp_path / "data"
    rows = []
    for i, (label, seed) in enumerate([("dog", 1), ("dog", 2), ("cat", 3), ("cat", 1)]):
        path = fx.save_image(root / "images" / label / f"{i}.png", (40, 36), seed=seed)
        rows.append({"id": f"image/{label}/{i}.png", "modality": "image", "label": label,
                     "group": f"{label}/{i}", "split": "train" if i < 3 else "test",
                     "path": path.relative_to(root).as_posix()})
    (root / "images" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rows.append({"id": "image/cat/bad.png", "modality": "image", "label": "cat",
                 "group": "cat/bad", "path": "images/cat/bad.png"})
    rows.append({"id": "text/x", "modality": "text", "label": "cat", "text": "not an image"})
    return write_manifest(pd.DataFrame(rows), root / "manifest.parquet")


def test_blip_captions_cache_and_rerun(blip, images, tmp_path, monkeypatch):
    cfg = CaptionConfig(model=str(blip), max_new_tokens=8)
    cache = tmp_path / "cache"
    summary = caption_manifest(images, cfg, cache_dir=cache, batch_size=3, device="cpu",
                               progress=False)
    assert summary["backend"] == "generic" and summary["cached"] == 0
    assert [e["id"] for e in summary["errors"]] == ["image/cat/bad.png"]
    m = read_manifest(summary["out"])
    table = m.table.set_index("source_id")
    assert Path(summary["out"]) == images.parent / "captions.parquet"
    assert len(table) == 4 and (m.table["modality"] == "text").all()
    src = read_manifest(images).table.set_index("id")
    for image_id, row in table.iterrows():
        assert isinstance(row.text, str) and row.text.strip()
        assert row.id == f"caption/{image_id}"
        assert (row.label, row.group, row.split) == tuple(src.loc[image_id, ["label", "group",
                                                                               "split"]])
    # identical bytes -> identical caption
    assert table.loc["image/dog/0.png", "text"] == table.loc["image/cat/3.png", "text"]
    # batch size does not change captions
    one = caption_manifest(images, cfg, tmp_path / "one.parquet", cache_dir=tmp_path / "c1",
                           batch_size=1, device="cpu", progress=False)
    assert (read_manifest(one["out"]).table["text"].tolist() == m.table["text"].tolist())
    # a re-run hits the cache for every good image and never loads the model
    monkeypatch.setattr(cap, "load_captioner", lambda *a, **k: pytest.fail("model loaded"))
    (images.parent / "images" / "cat" / "bad.png").unlink()
    src_rows = read_manifest(images, check_files=False).table
    write_manifest(src_rows[src_rows["id"] != "image/cat/bad.png"], images)
    again = caption_manifest(images, cfg, cache_dir=cache, device="cpu", progress=False)
    assert again["cached"] == 4 and again["computed"] == 0 and again["errors"] == []
    assert read_manifest(again["out"]).table["text"].tolist() == m.table["text"].tolist()
    # another prompt is another cache entry
    monkeypatch.undo()
    prompted = caption_manifest(images, CaptionConfig(str(blip), prompt="a photo of",
                                                      max_new_tokens=6),
                                tmp_path / "p.parquet", cache_dir=cache, device="cpu",
                                progress=False)
    assert prompted["computed"] == 4
    assert all(t.startswith("a photo of") for t in read_manifest(prompted["out"]).table["text"])


def test_resume_after_interruption(images, tmp_path):
    calls: list[int] = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed mid-run
        return [f"caption {len(calls)}.{i}" for i in range(len(batch))]

    cfg = CaptionConfig(model="fake/model", revision="v1")
    with pytest.raises(KeyboardInterrupt):
        caption_manifest(images, cfg, cache_dir=tmp_path / "c", batch_size=2, captioner=flaky,
                         progress=False)
    assert calls == [2, 1]  # cat/3 has the bytes of dog/0: captioned once
    summary = caption_manifest(images, cfg, cache_dir=tmp_path / "c", batch_size=2,
                               captioner=lambda b: [f"late {i}" for i in range(len(b))],
                               progress=False)
    # batch 1 (dog/0, dog/1) came from the cache; cat/3 shares dog/0's bytes
    assert summary["cached"] == 3 and summary["computed"] == 1
    texts = read_manifest(summary["out"]).table.set_index("source_id")["text"]
    assert texts["image/dog/0.png"] == "caption 1.0" and texts["image/cat/2.png"] == "late 0"


def test_failing_and_empty_items_are_reported(images, tmp_path):
    calls: list[int] = []

    def picky(batch):
        if len(batch) > 1:
            raise RuntimeError("out of memory")
        calls.append(1)
        return [""] if len(calls) == 2 else ["ok"]

    summary = caption_manifest(images, CaptionConfig("fake/m"), cache_dir=tmp_path / "c",
                               captioner=picky, progress=False)
    reasons = {e["id"]: e["reason"] for e in summary["errors"]}
    assert reasons == {"image/dog/1.png": "the model returned an empty caption",
                       "image/cat/bad.png": reasons["image/cat/bad.png"]}
    assert summary["items"] == 3 and len(calls) == 4


class FakeMiniCPM:
    def __init__(self):
        self.calls = []

    def to(self, device):
        return self

    def eval(self):
        return self

    def chat(self, image, msgs, tokenizer, **kwargs):
        self.calls.append((image.size, msgs, tokenizer, kwargs))
        return f" a {image.size[0]} pixel wide picture "


def test_minicpm_backend_boundary(monkeypatch):
    import transformers

    model, loads = FakeMiniCPM(), []

    def loader(kind, obj):
        def from_pretrained(name, **kwargs):
            loads.append((kind, name, kwargs["trust_remote_code"], kwargs["revision"]))
            return obj
        return from_pretrained

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        loader("config", type("C", (), {"quantization_config": {"bits": 4}})()))
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", loader("model", model))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", loader("tok", "TOK"))
    cfg = CaptionConfig(model=cap.REFERENCE_MODEL, revision="abc")
    with pytest.raises(CaptionError, match="--trust-remote-code"):
        load_captioner(cfg, device="cpu")
    fn = load_captioner(CaptionConfig(cap.REFERENCE_MODEL, revision="abc",
                                      trust_remote_code=True), device="cpu")
    from PIL import Image

    assert fn([Image.new("RGB", (7, 5)), Image.new("RGB", (9, 5))]) == [
        "a 7 pixel wide picture", "a 9 pixel wide picture"]
    assert {(k, n, t, r) for k, n, t, r in loads} == {
        (k, cap.REFERENCE_MODEL, True, "abc") for k in ("config", "model", "tok")}
    size, msgs, tok, kwargs = model.calls[0]
    assert msgs == [{"role": "user", "content": REFERENCE_PROMPT}] and tok == "TOK"
    assert kwargs["sampling"] is False and kwargs["max_new_tokens"] == 512


def test_cli_captions(blip, images, tmp_path):
    result = CliRunner().invoke(app, ["data", "captions", str(images), "--model", str(blip),
                                      "--cache-dir", str(tmp_path / "c"), "--device", "cpu",
                                      "--max-new-tokens", "5", "--out",
                                      str(tmp_path / "caps.jsonl"), "--json"])
    assert result.exit_code == 1, result.output  # the corrupt image is an error
    summary = json.loads(result.stdout)  # exactly one JSON object
    assert summary["items"] == 4 and summary["errors"][0]["id"] == "image/cat/bad.png"
    assert len(read_manifest(tmp_path / "caps.jsonl").table) == 4
