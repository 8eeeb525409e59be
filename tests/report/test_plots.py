"""Plot: two PNGs of the expected size, sampling, a cached layout on a second call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.fixtures.runs import clustered_run
from unibind.report.plots import layout, plot_run, sample_items


def png_size(path: str) -> tuple[int, int]:
    assert Path(path).stat().st_size > 5000
    with Image.open(path) as img:
        return img.size


def test_umap_plots_and_cached_layout(tmp_path: Path):
    run = clustered_run(tmp_path)
    summary = plot_run(run, method="umap")
    assert summary["points"] == 120 and summary["method"] == "umap"
    for key in ("by_class", "by_modality"):
        assert png_size(summary[key]) == (800, 600)
    stamp = (run / "plots" / "coords.safetensors").stat().st_mtime_ns
    plot_run(run, method="umap")  # unchanged inputs: the layout is reused, not recomputed
    assert (run / "plots" / "coords.safetensors").stat().st_mtime_ns == stamp


def test_sampling_keeps_modality_fractions(tmp_path: Path):
    items = pd.DataFrame({"modality": ["text"] * 600 + ["image"] * 300 + ["audio"] * 100})
    pick = sample_items(items, 100, seed=0)
    counts = items.iloc[pick]["modality"].value_counts().to_dict()
    assert counts == {"text": 60, "image": 30, "audio": 10}
    run = clustered_run(tmp_path, n=60)
    summary = plot_run(run, method="pca", max_points=30, out=tmp_path / "p")
    assert summary["points"] == 30 and summary["total"] == 180
    assert png_size(summary["by_modality"]) == (800, 600)


def test_layout_methods():
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    assert layout(x, method="pca").shape == (5, 2)
    assert layout(x[:1], method="umap").shape == (1, 2)  # too few points: PCA fallback
    with pytest.raises(ValueError, match="umap"):
        layout(x, method="tsne")


def test_files_are_named_after_the_method_used(tmp_path: Path):
    from unibind.report.plots import plot_files

    run = clustered_run(tmp_path, n=2)  # 6 points: too few for UMAP, PCA runs instead
    summary = plot_run(run, method="umap")
    assert summary["method"] == "pca"
    assert summary["by_class"] == str(run / "plots" / "pca_by_class.png")
    assert not list((run / "plots").glob("umap_*"))
    assert plot_files(run / "plots") == {"class": summary["by_class"],
                                         "modality": summary["by_modality"]}


def test_unlabelled_collections_are_coloured_by_group_or_folder():
    from unibind.report.plots import colour_key

    labelled = pd.DataFrame({"id": ["a", "b", "c"], "label": ["x", "y", "x"],
                             "group": ["", "", ""]})
    assert colour_key(labelled)[0] == "class"
    paired = pd.DataFrame({"id": ["d/1.png", "d/1.wav", "e/2.png"], "label": ["", "", ""],
                           "group": ["d/1", "d/1", "e/2"]})
    kind, key = colour_key(paired)
    assert kind == "group" and list(key) == ["d/1", "d/1", "e/2"]
    lone = pd.DataFrame({"id": ["pics/1.png", "sounds/2.wav", "3.txt"], "label": [""] * 3,
                         "group": ["pics/1", "sounds/2", "3"]})
    kind, key = colour_key(lone)
    assert kind == "folder" and list(key) == ["pics", "sounds", "(top)"]


def test_unlabelled_run_plots_without_warnings(tmp_path: Path):
    import warnings

    from unibind.features.folder import load_features, save_features

    run = clustered_run(tmp_path, n=8)
    feats = load_features(tmp_path / "features")
    items = feats.items.assign(label="")
    save_features(tmp_path / "features", items, feats.arrays, feats.meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No artists with labels found"
        summary = plot_run(run, method="pca")
    assert summary["by"] in ("group", "folder")
    assert Path(summary["by_class"]).name == f"pca_by_{summary['by']}.png"
