"""Run.embed: the one projection path (features or raw arrays -> unit vectors)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from unibind.errors import UsageError
from unibind.features.folder import save_features
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.run.folder import Run, RunError
from unibind.training.config import override, preset
from unibind.training.trainer import train


@pytest.fixture(scope="module")
def run_and_feats(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    f = generate(SyntheticSpec(n_classes=4, groups_per_class=10))
    save_features(root / "feats", f.items, f.arrays, f.meta)
    train(root / "feats", root / "run", config=override(preset("default"), epochs=2), seed=0)
    return Run.load(root / "run"), f


def test_features_and_raw_arrays_give_the_same_vectors(run_and_feats):
    run, f = run_and_feats
    emb = run.embed()  # the run's own features
    assert emb.modalities == ["text", "image", "audio"] and len(emb) == len(f.items)
    for m in emb.modalities:
        table = emb.table(m)
        assert np.array_equal(table["row"].to_numpy(), np.arange(len(table)))  # matrix order
        raw = run.embed({m: f.arrays[m]}).vectors[m]
        np.testing.assert_array_equal(emb.vectors[m], raw)
        np.testing.assert_array_equal(raw, run.project(m, f.arrays[m]))
        np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1, atol=1e-5)
        assert list(emb.labels[m]) == list(table["label"])
    np.testing.assert_array_equal(emb.matrix(), np.concatenate(list(emb.vectors.values())))


def test_a_trained_run_reaches_all_to_all(run_and_feats):
    run, _ = run_and_feats
    every = ["text", "image", "audio"]
    assert run.info["reach"] == run.reach == {m: every for m in every}


def test_split_mask_subsample_and_centre(run_and_feats):
    run, f = run_and_feats
    test = run.embed(f, split="test")
    mask = run.split_mask(f, "test")
    assert len(test) == mask.sum() and set(test.items["id"]) == set(f.items["id"][mask])
    text_only = (f.items["modality"] == "text").to_numpy()
    both = run.embed(f, split="test", mask=text_only)
    assert both.modalities == ["text"] and len(both) == (mask & text_only).sum()
    few = run.embed(f, max_per_modality=3, seed=1)
    assert all(len(v) == 3 for v in few.vectors.values())
    assert few.items["id"].tolist() == run.embed(f, max_per_modality=3, seed=1).items[
        "id"].tolist()
    centred = run.embed(f, center=True).vectors["image"]
    manual = run.embed(f).vectors["image"] - run.centers["image"]
    manual /= np.linalg.norm(manual, axis=1, keepdims=True)
    np.testing.assert_allclose(centred, manual, atol=1e-6)


def test_bad_requests_are_refused(run_and_feats):
    run, f = run_and_feats
    with pytest.raises(UsageError, match="unknown split 'dev'"):
        run.embed(f, split="dev")
    with pytest.raises(UsageError, match="raw arrays"):
        run.embed({"text": f.arrays["text"]}, split="test")
    with pytest.raises(RunError, match="no depth head"):
        run.project("depth", f.arrays["text"])
    with pytest.raises(RunError, match="no test items"):
        run.embed(f, split="test", mask=np.zeros(len(f.items), dtype=bool))


def test_evaluate_does_not_import_the_synthetic_generator():
    code = ("import sys, unibind.eval.evaluate; "
            "assert 'unibind.features.synthetic' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
