"""The unlabelled walk with the offline profile on a folder of photos and sounds WITHOUT any
caption: data folder -> extract -> bind -> index -> search, from the CLI and from Python. Text
queries find photos (the class-name bridge); sounds, which have no text side offline, are
found by sound queries and are said to be out of text's reach."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.fixtures.offline import skip_without_offline_models
from unibind.cli import app

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the photos")
SOUNDS = Path(__file__).parents[1] / "fixtures" / "audio"


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI walk on the folder; returns the root holding photos/, features/, run/."""
    skip_without_offline_models()
    root = tmp_path_factory.mktemp("unlabelled-offline")
    photos = root / "photos"
    (photos / "kitchen").mkdir(parents=True)
    Image.fromarray(skimage_data.chelsea()).save(photos / "chelsea.png")
    Image.fromarray(skimage_data.coffee()).save(photos / "kitchen" / "coffee.jpg")
    for name in ("horse", "violin"):
        shutil.copy(SOUNDS / f"{name}.ogg", photos / f"{name}.ogg")
    assert not list(photos.rglob("*.txt"))
    ok("data", "folder", str(photos))
    ok("extract", str(photos / "manifest.parquet"), "--out", str(root / "features"),
       "--profile", "offline")
    return root


def ok(*args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1]) if code == 0 else {}


def test_cli_walk(walk: Path):
    run = str(walk / "run")
    bound = ok("bind", str(walk / "features"), "--out", run)
    assert bound["scheme"] == "class-names" and bound["modalities"] == ["text", "image", "audio"]
    assert bound["reach"]["text"] == ["text", "image"] and bound["reach"]["audio"] == ["audio"]
    indexed = ok("index", run)
    assert indexed["modalities"] == {"image": 2, "audio": 2} and not indexed["not_indexed"]
    cat = ok("search", run, "--text", "a cat", "--k", "4")
    assert [h["modality"] for h in cat["results"]] == ["image", "image"]
    assert cat["results"][0]["path"].endswith("chelsea.png")
    assert cat["modality"] == ["image"] and "audio not searched" in cat["note"]
    horse = ok("search", run, "--audio", str(SOUNDS / "horse.ogg"), "--k", "4")
    assert [h["modality"] for h in horse["results"]] == ["audio", "audio"]
    assert horse["results"][0]["path"].endswith("horse.ogg")
    assert horse["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    result = CliRunner().invoke(app, ["search", run, "--text", "a cat", "--modality", "audio"])
    assert result.exit_code == 2
    assert "text queries cannot reach audio" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_python_walk(walk: Path, tmp_path: Path):
    import unibind
    from unibind.binding.bind import bind
    from unibind.search.index import build_index
    from unibind.search.space import Space

    bind(walk / "features", tmp_path / "run")
    build_index(tmp_path / "run")
    space = Space.load(tmp_path / "run")
    top = space.search(text="a cup of coffee", k=1)["results"][0]
    assert top["path"].endswith("coffee.jpg")
    # Run.encode: the same vectors as Space.embed, with no index needed
    run = unibind.Run.load(tmp_path / "run")
    # no text items: the text centre and text-query statistics come from the class prompts
    assert "text" in run.centers and "image" in run.info["calibration_pairs"]["text"]
    texts = ["a cat", "a cup of coffee"]
    np.testing.assert_allclose(run.encode(texts, modality="text"), space.embed("text", texts),
                               atol=1e-5)
    sounds = [SOUNDS / "horse.ogg", SOUNDS / "pig.ogg"]
    vecs = unibind.encode(tmp_path / "run", sounds, modality="audio", batch_size=1)
    np.testing.assert_allclose(vecs, space.embed("audio", sounds), atol=1e-5)
    assert vecs.shape == (2, run.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_http_says_what_text_cannot_reach(walk: Path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from unibind.serve.app import create_app

    if not (walk / "run" / "index").is_dir():
        ok("bind", str(walk / "features"), "--out", str(walk / "run"))
        ok("index", str(walk / "run"))
    client = TestClient(create_app(walk / "run"), base_url="http://127.0.0.1")
    assert client.get("/api/info").json()["reach"]["audio"] == ["audio"]
    refused = client.post("/api/search", json={"text": "a cat", "modality": ["audio"]})
    assert refused.status_code == 422
    assert "text queries cannot reach audio" in refused.json()["error"]
    found = client.post("/api/search", json={"text": "a cat", "k": 4}).json()
    assert {r["modality"] for r in found["results"]} == {"image"}
    assert "audio not searched" in found["note"]
