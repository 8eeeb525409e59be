"""The one fit loop: every ``TrainConfig`` field is honoured by heads-only training and by
fine-tuning, or refused by the path that would ignore it (field by field)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from tests.fixtures.media import tiny_features
from unibind.encoders import load_encoder
from unibind.errors import UnibindError
from unibind.features.folder import load_features
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.training.config import (
    BOUND_FIELDS,
    FIELD_PATHS,
    PATHS,
    ConfigError,
    TrainConfig,
    override,
    preset,
)
from unibind.training.finetune import Backbones, finetune, item_inputs, set_trainable
from unibind.training.fit import fit
from unibind.training.loop import FeatureStep, TrainingError, batch_bounds, fit_loop
from unibind.training.trainer import train

# small and fast; every field below moves away from these values
BASE = override(preset("default"), embed_dim=16, hidden=32, epochs=3, patience=0, batch_size=8,
                finetune_batch_size=8, val_fraction=0.25, test_fraction=0.2, lr=5e-3,
                backbone_lr=1e-3)
CHANGES = {
    "embed_dim": 8, "hidden": 0, "dropout": 0.5, "positives": "instance",
    "pair_weights": {"text-image": 2.0, "text-audio": 1.0, "image-audio": 0.25},
    "mse_weight": 0.5, "batch_size": 4, "lr": 1e-4, "weight_decay": 0.5, "epochs": 2,
    "schedule": "constant", "temperature": 0.5, "logit_scale_max": 5.0, "learn_scale": False,
    "patience": 1, "val_fraction": 0.1, "test_fraction": 0.4, "val_queries": 1,
    "finetune_layers": 1, "backbone_lr": 1e-2, "finetune_batch_size": 4,
    "class_weight": 2.0, "select": "class", "bound_start": False, "mix_shares": (0.5,),
    "soup": 2,
}
# settings in which a field can show its effect: early stopping needs a validation score that
# stops improving (a learning rate too high for these sets)
SHOWS_IN = {("patience", "heads"): {"lr": 0.03, "positives": "class", "select": "class"},
            ("patience", "finetune"): {"lr": 0.1}}
FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]


def configs(name: str, path: str) -> tuple[TrainConfig, TrainConfig]:
    """(base, base with ``name`` changed) for training path ``path``."""
    base = dataclasses.replace(BASE, **SHOWS_IN.get((name, path), {}))
    return base, dataclasses.replace(base, **{name: CHANGES[name]})


@pytest.fixture(scope="module")
def synth():
    return generate(SyntheticSpec(n_classes=4, groups_per_class=12))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    feats = load_features(tiny_features(root))
    encoders = {m: load_encoder(feats.meta["encoders"][m]["spec"]) for m in feats.modalities}
    initial = {m: {k: v.clone() for k, v in e.model.state_dict().items()}
               for m, e in encoders.items()}
    return root, feats, encoders, initial


def _digest(res, extra=None) -> str:
    h = hashlib.sha256()
    for state in (res.heads.state_dict(), *(extra or {}).values()):
        for k in sorted(state):
            h.update(k.encode())
            h.update(state[k].detach().cpu().numpy().tobytes())
    curve = [{k: v for k, v in c.items() if "seconds" not in k} for c in res.curve]
    h.update(json.dumps([curve, res.split_info, res.best_epoch, res.stopped_early],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def heads_outcome(feats, cfg, split_seed=0) -> str:
    return _digest(fit(feats, cfg, seed=0, split_seed=split_seed, base=cfg))


def finetune_outcome(media, cfg, split_seed=0) -> str:
    _, feats, encoders, initial = media
    for m, enc in encoders.items():
        enc.model.load_state_dict(initial[m])
        set_trainable(enc.model, cfg.finetune_layers)
    step = Backbones(encoders, item_inputs(feats))
    res = fit_loop(feats, cfg, step, seed=0, split_seed=split_seed, base=cfg)
    return _digest(res, step.state())


def test_every_field_is_classified_and_has_a_test_value():
    assert set(CHANGES) == set(FIELDS)
    assert set(FIELD_PATHS) <= set(FIELDS) and set(FIELD_PATHS.values()) <= set(PATHS)
    for name in FIELDS:
        assert getattr(BASE, name) != CHANGES[name], name


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", FIELDS)
def test_each_path_honours_or_refuses_each_field(name, path, request):
    data = request.getfixturevalue("synth" if path == "heads" else "media")
    outcome = heads_outcome if path == "heads" else finetune_outcome
    base, changed = configs(name, path)
    if name in BOUND_FIELDS and path == "heads":
        pytest.skip("read by train's bound start, not the fit loop: "
                    "tests/binding/test_bind.py::test_default_starts_from_the_bound_run")
    if FIELD_PATHS.get(name, path) == path:
        assert outcome(data, changed) != outcome(data, base), name
    else:
        feats, step = (data, FeatureStep(data)) if path == "heads" else (
            data[1], Backbones(data[2], {}))
        with pytest.raises(ConfigError, match=f"{name}=.* only; .* would ignore it"):
            fit_loop(feats, changed, step, base=base)


def test_entry_points_refuse_fields_of_the_other_path(synth, media, tmp_path):
    with pytest.raises(ConfigError, match="finetune_layers=2"):
        train(synth, tmp_path / "a", config=override(preset("default"), finetune_layers=2))
    with pytest.raises(ConfigError, match="batch_size=32"):  # before loading any encoder
        finetune(media[0] / "feats", tmp_path / "b", config=override(preset("seed"),
                                                                     batch_size=32),
                 preset_name="seed")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a preset's own values are never refused: `seed` sets finetune_batch_size=8
    train(synth, tmp_path / "c", preset_name="seed", config=override(preset("seed"), epochs=1))
    assert issubclass(ConfigError, UnibindError)


def test_split_seed_is_honoured_by_both_paths(synth, media):
    assert heads_outcome(synth, BASE, split_seed=1) != heads_outcome(synth, BASE)
    assert finetune_outcome(media, BASE, split_seed=1) != finetune_outcome(media, BASE)


def test_both_paths_refuse_fewer_than_two_groups(synth, media):
    one = synth.items.copy()
    one["group"] = "g"  # one group holding everything
    feats = dataclasses.replace(synth, items=one)
    cfg = override(BASE, val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(TrainingError, match="1 training group"):
        fit_loop(feats, cfg, FeatureStep(feats))
    _, tuned, encoders, _ = media
    one = tuned.items.copy()
    one["group"] = "g"
    with pytest.raises(TrainingError, match="1 training group"):
        fit_loop(dataclasses.replace(tuned, items=one), cfg, Backbones(encoders, {}))


def test_batches_cover_every_group_once():
    for n in range(2, 40):
        for size in (2, 3, 8):
            for cap in (False, True):
                bounds = batch_bounds(n, size, cap)
                covered = np.concatenate([np.arange(a, b) for a, b in bounds])
                assert all(b - a >= 2 for a, b in bounds)
                if cap:
                    assert all(b - a <= size for a, b in bounds)
                    assert len(covered) >= n - 1  # at most a lone last group waits an epoch
                else:
                    assert np.array_equal(covered, np.arange(n)) and len(bounds) == max(
                        n // size, 1)


def test_cli_refuses_a_field_the_path_would_ignore(synth, tmp_path):
    from typer.testing import CliRunner

    from unibind.cli import app
    from unibind.features.folder import save_features

    save_features(tmp_path / "f", synth.items, synth.arrays, synth.meta)
    res = CliRunner().invoke(app, ["train", str(tmp_path / "f"), "--out", str(tmp_path / "r"),
                                   "--finetune-layers", "1", "--epochs", "1"])
    assert res.exit_code == 2 and "finetune_layers=1" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r").exists()
