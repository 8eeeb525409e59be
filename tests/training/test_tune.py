"""tune: Optuna trials on validation data; the best config feeds `unibind train --config`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from unibind.cli import app
from unibind.features.folder import save_features
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.training.config import TrainConfig, load_train_config
from unibind.training.tune import balance_penalty, tune


def test_tune_writes_a_config_train_accepts(tmp_path):
    f = generate(SyntheticSpec(n_classes=4, groups_per_class=15))
    save_features(tmp_path / "feats", f.items, f.arrays, f.meta)
    summary = tune(tmp_path / "feats", trials=3, out=tmp_path / "best.json", epochs=3)
    assert summary["trials"] == 3 and len(summary["history"]) == 3
    best = summary["best"]["objective"]
    assert best == max(h["objective"] for h in summary["history"])
    cfg = load_train_config(tmp_path / "best.json")
    assert isinstance(cfg, TrainConfig) and cfg.epochs == 3
    assert cfg.embed_dim in (64, 128, 256, 512) and cfg.positives in ("instance", "class")
    res = CliRunner().invoke(app, ["train", str(tmp_path / "feats"), "--out",
                                   str(tmp_path / "run"), "--config",
                                   str(tmp_path / "best.json"), "--json"])
    assert res.exit_code == 0, res.output
    run_cfg = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert run_cfg["lr"] == cfg.lr and run_cfg["embed_dim"] == cfg.embed_dim
    res = CliRunner().invoke(app, ["tune", str(tmp_path / "feats"), "--trials", "1",
                                   "--epochs", "2", "--out", str(tmp_path / "b2.json"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["trials"] == 1


def test_balance_penalty():
    ok = {"validation": {"none": {"share_dev": 0.5, "drop": 0.3},
                         "balanced": {"share_dev": 0.05, "drop": 0.01}}}
    assert balance_penalty(ok) == 0
    bad = {"validation": {"none": {"share_dev": 0.3, "drop": 0.05}}}
    assert abs(balance_penalty(bad) - 0.23) < 1e-9
