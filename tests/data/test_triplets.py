"""Joining audio, images and captions into samples (image k + caption k + audio k)."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fixtures import data_builders as fx
from unibind.cli import app
from unibind.data.captions import CaptionConfig, caption_manifest
from unibind.data.esc50 import build_esc50
from unibind.data.images import build_images
from unibind.data.manifest import ManifestError, read_manifest, write_manifest
from unibind.data.triplets import build_triplets


@pytest.fixture()
def parts(tmp_path):
    """Audio (dog 5, rain 5, wind 2), images (dog 5 listed out of order, rain 3) and captions
    (all dog images, 2 of 3 rain images, listed in reverse)."""
    root = tmp_path / "data"
    audio, images, captions = [], [], []
    for label, n in (("dog", 5), ("rain", 5), ("wind", 2)):
        for fold in range(n, 0, -1):
            p = root / "audio" / label / f"fold{fold}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(fx.wav_bytes(100))
            audio.append({"id": f"esc50/{label}/fold{fold}", "modality": "audio", "label": label,
                          "group": f"{label}/fold{fold}", "path": f"audio/{label}/fold{fold}.wav",
                          "fold": fold, "split": "train" if (label, fold) == ("dog", 2) else ""})
    for label, n in (("dog", 5), ("rain", 3)):
        for i in (3, 1, 10, 2, 4)[:n]:
            fx.save_image(root / "images" / label / f"Image_{i}.png", seed=i)
            images.append({"id": f"image/{label}/Image_{i}.png", "modality": "image",
                           "label": label, "group": f"{label}/Image_{i}",
                           "split": "test" if i in (2, 3) else "",
                           "path": f"images/{label}/Image_{i}.png"})
    for img in reversed(images):
        if img["id"] == "image/rain/Image_1.png":
            continue
        captions.append({"id": f"caption/{img['id']}", "modality": "text", "label": img["label"],
                         "group": img["group"], "split": img["split"],
                         "text": f"a picture {img['id']}", "source_id": img["id"]})
    return [write_manifest(pd.DataFrame(rows), root / f"{name}.parquet")
            for name, rows in (("audio", audio), ("images", images), ("captions", captions))]


def test_join_pairs_and_reports(parts, tmp_path):
    summary = build_triplets(parts, tmp_path / "data" / "triplets.parquet")
    assert summary["per_label"] == {"dog": 5, "rain": 2}
    assert summary["missing"] == {"wind": ["text", "image"]}
    assert summary["unpaired"] == {"audio": 3 + 2, "image": 1}
    m = read_manifest(summary["out"])
    t = m.table
    assert len(t) == 3 * 7 and summary["samples"] == 7
    for (label, k), sample in t.groupby(["label", "sample"]):
        assert sample["group"].unique().tolist() == [f"{label}/{k}"]
        assert sorted(sample["modality"]) == ["audio", "image", "text"]
        image = sample[sample["modality"] == "image"].iloc[0]
        text = sample[sample["modality"] == "text"].iloc[0]
        audio = sample[sample["modality"] == "audio"].iloc[0]
        assert text.source_id == image.id and text.text == f"a picture {image.id}"
        assert audio.source_group == f"{label}/fold{int(k) + 1}"  # natural fold order
        assert m.resolve(image.path).is_file() and m.resolve(audio.path).is_file()
    dog_images = t[(t["label"] == "dog") & (t["modality"] == "image")].sort_values("sample")
    assert dog_images["id"].str.extract(r"_(\d+)")[0].astype(int).tolist() == [1, 2, 3, 4, 10]
    # the split of a sample is the split its items agree on; mixed ones are cleared
    assert set(t.loc[t["group"] == "dog/0", "split"]) == {""}
    assert set(t.loc[t["group"] == "dog/1", "split"]) == {""}  # image test, audio train
    assert set(t.loc[t["group"] == "dog/2", "split"]) == {"test"}  # image+caption test


def test_keep_incomplete_and_errors(parts, tmp_path):
    summary = build_triplets(parts, tmp_path / "data" / "all.parquet", keep_incomplete=True)
    assert summary["per_label"]["wind"] == 2
    t = read_manifest(summary["out"]).table
    assert set(t.loc[t["label"] == "wind", "modality"]) == {"audio"}
    pair = build_triplets(parts[:2], tmp_path / "data" / "pairs.parquet")
    assert pair["modalities"] == ["image", "audio"] and pair["per_label"] == {"dog": 5, "rain": 3}
    with pytest.raises(ManifestError, match="outside"):
        build_triplets(parts, tmp_path / "elsewhere" / "t.parquet")
    with pytest.raises(ManifestError, match="more than one input manifest"):
        build_triplets([parts[0], parts[0]], tmp_path / "data" / "t.parquet")


def test_end_to_end_recipe(tmp_path):
    """ESC-50 fold merge + images from a folder + captions -> triplets, through the CLI."""
    data, _ = fx.esc50_zip(("dog", "rain"), folds=5, per_fold=2)
    src = tmp_path / "esc"
    zipfile.ZipFile(io.BytesIO(data)).extractall(src)
    work = tmp_path / "work"
    esc = build_esc50(work / "esc50", source=src, merge_folds=True, progress=False)
    for offset, label in ((0, "dog"), (50, "rain")):
        for i in range(6):
            fx.save_image(tmp_path / "pics" / label / f"{i}.png", (70, 70), seed=offset + i)
    imgs = build_images(work / "images", None, per_class=5, from_folder=tmp_path / "pics")
    caps = caption_manifest(imgs["out"], CaptionConfig("fake/m"), cache_dir=tmp_path / "c",
                            captioner=lambda b: [f"{im.size[0]} px" for im in b], progress=False)
    result = CliRunner().invoke(app, ["data", "triplets", esc["out"], imgs["out"], caps["out"],
                                      "--out", str(work / "triplets.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # exactly one JSON object
    assert summary["per_label"] == {"dog": 5, "rain": 5} and summary["missing"] == {}
    assert summary["items"] == 30 and summary["unpaired"] == {}
