"""Training on synthetic features: held-out quality, presets, determinism, run contents."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from unibind.eval.metrics import pair_metrics
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.run.embed import embed_items
from unibind.run.folder import Run
from unibind.training.batches import Triplets
from unibind.training.config import PRESETS, config_from_json, override, preset
from unibind.training.fit import fit
from unibind.training.trainer import train


@pytest.fixture(scope="module")
def feats():
    return generate(SyntheticSpec())


@pytest.fixture(scope="module")
def default_fit(feats):
    t0 = time.perf_counter()
    res = fit(feats, preset("default"), seed=0)
    return res, time.perf_counter() - t0


def _test_pairs(res, feats):
    emb = embed_items(res.heads, feats, res.split == "test")
    return pair_metrics(emb.vectors, emb.labels)


def test_default_reaches_recall_on_held_out_in_seconds(default_fit, feats):
    res, seconds = default_fit
    pairs = _test_pairs(res, feats)
    cross = [v["R@1"] for p, v in pairs.items() if p.split("->")[0] != p.split("->")[1]]
    assert np.mean(cross) >= 0.95 and min(cross) >= 0.9, pairs
    assert seconds < 30
    assert res.best_val is not None and 1 <= res.best_epoch <= len(res.curve)


def test_default_beats_seed_on_every_cross_modal_pair(default_fit, feats):
    seed_res = fit(feats, preset("seed"), seed=0)
    assert len(seed_res.curve) == 20 and not seed_res.stopped_early  # reference: 20 epochs
    ours, ref = _test_pairs(default_fit[0], feats), _test_pairs(seed_res, feats)
    for pair in ours:
        if pair.split("->")[0] != pair.split("->")[1]:
            assert ours[pair]["mAP@10"] > ref[pair]["mAP@10"], pair


def test_seed_preset_is_the_reference_recipe():
    cfg = PRESETS["seed"]
    assert (cfg.positives, cfg.mse_weight, cfg.batch_size, cfg.lr, cfg.weight_decay,
            cfg.epochs, cfg.embed_dim) == ("instance", 0.1, 8, 1e-5, 0.01, 20, 256)
    assert set(cfg.pair_weights.values()) == {0.3} and cfg.patience == 0 and cfg.hidden == 0
    assert config_from_json({"config": {"lr": 0.5}}, cfg).lr == 0.5


def test_same_seed_same_weights_other_seed_differs(feats):
    cfg = override(preset("default"), epochs=3, patience=0)
    a = fit(feats, cfg, seed=7).heads.state_dict()
    b = fit(feats, cfg, seed=7).heads.state_dict()
    c = fit(feats, cfg, seed=8).heads.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_no_test_group_is_trained_on(default_fit, feats):
    res = default_fit[0]
    groups = feats.items["group"].to_numpy()
    assert not set(groups[res.split == "test"]) & set(groups[res.split == "train"])
    assert not set(groups[res.split == "val"]) & set(groups[res.split == "train"])


def test_missing_modalities_and_classes_without_audio():
    f = generate(SyntheticSpec(n_classes=4, groups_per_class=12, missing={"audio": 0.4}))
    # class000 has no audio at all
    f.items = f.items[~((f.items["modality"] == "audio") & (f.items["label"] == "class000"))]
    keep = f.items.loc[f.items["modality"] == "audio", "row"].to_numpy()
    f.arrays["audio"] = f.arrays["audio"][np.sort(keep)]
    f.items.loc[f.items["modality"] == "audio", "row"] = np.argsort(np.argsort(keep))
    res = fit(f, override(preset("default"), epochs=5, positives="instance"), seed=0)
    assert np.isfinite(res.curve[-1]["loss"])
    trip = Triplets.from_items(f.items, ["text", "image", "audio"])
    rows = trip.sample(np.random.default_rng(0))
    assert (rows["audio"] == -1).sum() > 0 and (rows["text"] >= 0).all()


def test_items_without_groups_are_paired_by_label():
    f = generate(SyntheticSpec(n_classes=3, groups_per_class=10))
    f.items["group"] = ""
    trip = Triplets.from_items(f.items, f.modalities)
    assert trip.pseudo and trip.n_groups == 30
    rows = trip.sample(np.random.default_rng(0))
    labels = {m: f.table(m).set_index("row")["label"] for m in f.modalities}
    for g in range(trip.n_groups):
        assert len({labels[m][rows[m][g]] for m in f.modalities}) == 1
    res = fit(f, override(preset("default"), epochs=3), seed=0)
    assert np.isfinite(res.curve[-1]["loss"])


def test_train_writes_a_loadable_run(tmp_path, feats):
    out = tmp_path / "run"
    summary = train(feats, out, config=override(preset("default"), epochs=4), seed=3)
    run = Run.load(out)
    for key in ("encoders", "features", "preset", "seed", "data_digest", "curve", "split",
                "calibration", "calibration_pairs", "search", "config"):
        assert key in run.info, key
    assert run.info["seed"] == 3 and len(run.info["curve"]) == summary["epochs"] == 4
    assert set(run.info["calibration"]) == {"text", "image", "audio"}
    assert run.info["search"]["mode"] in ("none", "balanced", "calibrated", "centered")
    assert isinstance(run.info["search"]["center"], bool)
    x = feats.arrays["image"][:5]
    assert np.allclose(np.linalg.norm(run.project("image", x, center=True), axis=1), 1, atol=1e-5)
    assert run.embed_dim == 256 and run.encoders["text"]["dim"] == 64


def test_weights_do_not_depend_on_how_features_were_stored(tmp_path):
    from unibind.features.folder import load_features, save_features

    f = generate(SyntheticSpec(n_classes=3, groups_per_class=10))
    save_features(tmp_path / "f", f.items, f.arrays, f.meta)  # safetensors sorts the keys
    g = load_features(tmp_path / "f")
    cfg = override(preset("default"), epochs=2, patience=0)
    a, b = fit(f, cfg, seed=1).heads.state_dict(), fit(g, cfg, seed=1).heads.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
