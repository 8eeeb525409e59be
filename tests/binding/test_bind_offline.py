"""The offline profile's class-name bridge: EfficientNet-Lite0's ImageNet probabilities over
MiniLM embeddings of "a photo of a {class}" place a photo in MiniLM's text space, untrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.fixtures.offline import skip_without_offline_models
from unibind.binding.bind import bind
from unibind.data.manifest import write_manifest
from unibind.features.extract import extract
from unibind.run.folder import Run

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the photo")
PROMPTS = ["a cup of coffee", "a dog barking", "a red sports car", "a church bell ringing",
           "a snowy mountain", "rain falling on a roof", "a bicycle"]


@pytest.fixture(scope="module")
def offline_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skip_without_offline_models()
    root = tmp_path_factory.mktemp("offline-bind")
    Image.fromarray(skimage_data.coffee()).save(root / "coffee.png")
    Image.fromarray(skimage_data.chelsea()).save(root / "chelsea.png")
    rows = [{"id": name, "modality": "image", "label": "", "group": "", "split": "",
             "path": f"{name}.png", "text": ""} for name in ("coffee", "chelsea")]
    rows += [{"id": f"t{i}", "modality": "text", "label": "", "group": "", "split": "",
              "path": "", "text": t} for i, t in enumerate(PROMPTS)]
    write_manifest(pd.DataFrame(rows), root / "manifest.parquet")
    extract(root / "manifest.parquet", root / "features", profile="offline")
    return root


def test_coffee_ranks_a_cup_of_coffee_first(offline_features: Path):
    summary = bind(offline_features / "features", offline_features / "run")
    assert summary["scheme"] == "class-names" and summary["modalities"] == ["text", "image"]
    run = Run.load(offline_features / "run")
    feats = run.load_features()
    texts, images = feats.table("text"), feats.table("image")
    t = run.project("text", feats.arrays["text"][texts["row"].to_numpy()])
    i = run.project("image", feats.arrays["image"][images["row"].to_numpy()])
    scores = dict(zip(images["id"], i @ t.T))
    ranked = [texts["text"][j] for j in np.argsort(-scores["coffee"])]
    assert ranked[0] == "a cup of coffee", ranked
    # the cat photo does not pick the coffee prompt
    assert texts["text"][int(np.argmax(scores["chelsea"]))] != "a cup of coffee"


def test_offline_audio_gets_a_space_of_its_own(offline_features: Path, tmp_path: Path):
    from unibind.features.folder import Features, load_features

    feats = load_features(offline_features / "features")
    meta = {**feats.meta, "encoders": {**feats.meta["encoders"],
                                        "audio": {"spec": {"backend": "aisfx"}, "dim": 4}}}
    items = pd.concat([feats.items, pd.DataFrame([{
        "id": f"a{i}", "modality": "audio", "label": "", "group": "", "split": "",
        "path": f"{i}.wav", "text": "", "row": i} for i in range(2)])], ignore_index=True)
    audio = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], np.float32)
    with_audio = Features(items=items, arrays={**feats.arrays, "audio": audio}, meta=meta,
                          path=None)
    summary = bind(with_audio, tmp_path / "run")
    assert summary["modalities"] == ["text", "image", "audio"]
    assert summary["reach"] == {"text": ["text", "image"], "image": ["text", "image"],
                                "audio": ["audio"]}
    assert "no text side" in summary["unreachable"]["audio"]
    run = Run.load(tmp_path / "run")
    assert run.reach == summary["reach"] and run.info["reach"] == summary["reach"]
    a = run.project("audio", audio)
    t = run.project("text", feats.arrays["text"])
    i = run.project("image", feats.arrays["image"])
    np.testing.assert_allclose(a @ a.T, [[1, 2 ** -0.5], [2 ** -0.5, 1]], atol=1e-6)  # aisfx
    assert np.abs(a @ t.T).max() == 0 and np.abs(a @ i.T).max() == 0  # zero cross terms
    # the text block is the class-name space unchanged
    base = Run.load(bind(offline_features / "features", tmp_path / "base")["run"])
    np.testing.assert_allclose(t @ i.T, base.project("text", feats.arrays["text"])
                               @ base.project("image", feats.arrays["image"]).T, atol=1e-6)
