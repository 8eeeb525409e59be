"""evaluate: held-out metrics shape, the balance target on synthetic data, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from unibind.cli import app
from unibind.eval.evaluate import evaluate
from unibind.features.folder import load_features, save_features
from unibind.features.splits import SplitError
from unibind.features.synthetic import SyntheticSpec, generate
from unibind.run.folder import RunError
from unibind.training.trainer import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    f = generate(SyntheticSpec())
    save_features(root / "feats", f.items, f.arrays, f.meta)
    train(root / "feats", root / "run", preset_name="default", seed=0)
    return root


def test_metrics_shape_and_files(trained):
    m = evaluate(trained / "run")
    assert m["split"] == "test" and m["n_items"] == {"text": 80, "image": 80, "audio": 80}
    assert len(m["pairs"]) == 9
    assert set(m["pairs"]["text->audio"]) >= {"R@1", "R@5", "R@10", "mAP@10", "MRR"}
    assert set(m["zero_shot"]) == {"text", "image", "audio"}
    assert min(m["zero_shot"].values()) > 0.8
    assert set(m["mixed"]) == {"none", "balanced", "calibrated", "centered"}
    for r in m["mixed"].values():
        assert set(r["share@10"]) == set(r["pool_share"]) == {"text", "image", "audio"}
        assert sum(r["share@10"].values()) == pytest.approx(1.0)
    assert m["modality_gap"] > m["modality_gap_centered"]
    on_disk = json.loads((trained / "run" / "metrics.json").read_text())
    assert on_disk["pairs"] == m["pairs"]
    assert "| text->audio |" in (trained / "run" / "metrics.md").read_text()


def test_balanced_mode_meets_the_share_and_recall_targets(trained):
    m = evaluate(trained / "run", write=False)
    bal = m["mixed_check"]["balanced"]
    assert bal["share_dev"] <= 0.10  # every query modality, every result modality
    assert bal["drop"] <= 0.02  # cross-modal R@10 vs per-target-modality search
    assert m["mixed_check"]["none"]["share_dev"] > 0.10  # the flaw exists without the fix


def test_changed_features_are_refused(trained, tmp_path):
    f = load_features(trained / "feats")
    items = f.items.copy()
    items.loc[items.index[:3], "group"] = "moved"
    save_features(tmp_path / "other", items, f.arrays, f.meta)
    with pytest.raises(SplitError, match="different split"):
        evaluate(trained / "run", features=tmp_path / "other")
    in_memory = load_features(tmp_path / "other")  # strict for in-memory features too
    with pytest.raises(SplitError, match="allow_split_mismatch"):
        evaluate(trained / "run", features=in_memory, write=False)
    m = evaluate(trained / "run", features=in_memory, write=False, allow_split_mismatch=True)
    assert np.isfinite(m["cross_modal"]["mAP@10"])
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(trained / "run", split="dev")


def test_run_without_features_path_needs_features(tmp_path):
    f = generate(SyntheticSpec(n_classes=3, groups_per_class=10))
    train(f, tmp_path / "run", seed=0)
    with pytest.raises(RunError, match="features"):
        evaluate(tmp_path / "run")
    m = evaluate(tmp_path / "run", features=f, split="val", write=False)
    assert m["split"] == "val" and np.isfinite(m["cross_modal"]["mAP@10"])


def test_cli_train_and_evaluate_print_one_json(trained, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(trained / "feats"), "--out", str(tmp_path / "r"),
                              "--preset", "seed", "--epochs", "2", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["preset"] == "seed" and summary["epochs"] == 2
    res = runner.invoke(app, ["evaluate", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert metrics["split"] == "test" and "text->image" in metrics["pairs"]
    res = runner.invoke(app, ["evaluate", str(tmp_path / "nothing"), "--json"])
    assert res.exit_code == 2 and "not a run folder" in res.output


def test_instance_level_and_query_counts(trained):
    m = evaluate(trained / "run", write=False, compare_init=False)
    inst = m["instance"]
    assert m["relevance"] == "label" and inst["pairs"]["text->image"]["queries"] == 80
    assert inst["pairs"]["text->text"]["queries"] == 0  # one caption per group: not measured
    assert inst["pairs"]["text->text"]["R@1"] is None
    assert len(inst["cross_modal"]["pairs_measured"]) == 6
    assert 0 < inst["cross_modal"]["R@1"] <= m["cross_modal"]["R@1"]  # the thing is harder
    assert m["warnings"] == []


def test_small_data_warns_and_versus_compares_common_pairs(trained, tmp_path):
    from unibind.eval.compare import side_by_side, versus_markdown
    from unibind.run.folder import Run

    m = evaluate(trained / "run", write=False, compare_init=False)
    other = json.loads(json.dumps(m))
    for p in ("text->audio", "audio->text"):
        other["pairs"][p] = {k: None for k in other["pairs"][p]} | {"queries": 0}
    versus = side_by_side(Run.load(trained / "run"), m, [(trained / "run", other)])
    assert set(versus["compared_pairs"]) == set(versus["pairs"])
    assert "text->audio" in versus["not_compared"] and len(versus["pairs"]) == 4
    name = versus["runs"][0]["name"]
    want = np.mean([m["pairs"][p]["mAP@10"] for p in versus["pairs"]])
    assert versus["cross_modal"][name] == pytest.approx(want)  # the same 4 pairs on each side
    assert "Not compared" in "\n".join(versus_markdown(versus))
    f = generate(SyntheticSpec(n_classes=3, groups_per_class=8))
    save_features(tmp_path / "feats", f.items, f.arrays, f.meta)
    summary = train(tmp_path / "feats", tmp_path / "run", seed=0)
    assert "unibind bind" in summary["note"]  # a handful of groups: said so
    small = evaluate(tmp_path / "run", write=False)
    assert small["warnings"] and "rest on fewer than 20 queries" in small["warnings"][0]
