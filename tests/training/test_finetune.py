"""--finetune with the tiny models: loss falls, backbones change, the run loads and searches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.fixtures.media import tiny_features
from unibind.encoders import load_encoder, resolve_profile
from unibind.eval.evaluate import evaluate
from unibind.features.folder import load_features
from unibind.run.folder import Run
from unibind.training.config import override, preset
from unibind.training.finetune import finetune, layer_list, set_trainable


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    tiny_features(root)
    cfg = override(preset("default"), epochs=4, patience=0, lr=5e-3, backbone_lr=1e-3,
                   finetune_batch_size=8, val_fraction=0.2, test_fraction=0.2)
    summary = finetune(root / "feats", root / "run", config=cfg, seed=0, threads=1)
    return root, summary


def test_loss_falls_and_backbones_change(tuned):
    root, summary = tuned
    run = Run.load(root / "run")
    losses = [c["loss"] for c in run.info["curve"]]
    assert losses[-1] < losses[0], losses
    before = resolve_profile("tiny")["text"]
    old = load_encoder(before).model.state_dict()
    new = load_encoder(run.encoders["text"]["spec"]).model.state_dict()
    assert any(not torch.equal(old[k], new[k]) for k in old if k in new)
    assert run.encoders["text"]["fingerprint"] != load_features(root / "feats").meta[
        "encoders"]["text"]["fingerprint"]
    assert summary["finetune"]["trainable_params"]["image"] > 0


def test_finetuned_run_loads_evaluates_and_embeds_consistently(tuned):
    root, _ = tuned
    run = Run.load(root / "run")
    feats = load_features(run.features_path)
    assert run.features_path == (root / "run" / "features").resolve()
    # a query embedded with the run's (fine-tuned) encoder lands where the stored features do
    enc = load_encoder(run.encoders["text"]["spec"])
    table = feats.table("text")
    direct = enc.encode(list(table["text"][:4]))
    np.testing.assert_allclose(direct, feats.arrays["text"][:4], atol=1e-4)
    m = evaluate(root / "run")
    assert len(m["pairs"]) == 9 and m["split"] == "test"
    assert set(m["zero_shot"]) == {"text", "image", "audio"}  # prompts via the tuned encoder


def test_last_n_layers_only():
    enc = load_encoder(resolve_profile("tiny")["text"])
    name, layers = layer_list(enc.model)
    n_all = set_trainable(enc.model, 0)
    n_last = set_trainable(enc.model, 1)
    assert 0 < n_last < n_all and len(layers) == 2
    frozen = [n for n, p in enc.model.named_parameters() if not p.requires_grad]
    assert any(n.startswith(f"{name}.0.") for n in frozen)
    assert not any(n.startswith(f"{name}.1.") for n in frozen)
    assert "embeddings.word_embeddings.weight" in frozen


def test_cli_finetune_last_layer(tuned, tmp_path):
    import json

    from typer.testing import CliRunner

    from unibind.cli import app

    root, _ = tuned
    res = CliRunner().invoke(app, ["train", str(root / "feats"), "--out", str(tmp_path / "r"),
                                   "--finetune", "--finetune-layers", "1", "--epochs", "1",
                                   "--batch-size", "4", "--device", "cpu", "--threads", "1",
                                   "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["finetune"]["layers"] == 1 and summary["epochs"] == 1
    info = Run.load(tmp_path / "r").info
    assert info["finetune"]["layers"] == 1
    assert info["config"]["finetune_batch_size"] == 4  # --batch-size is the fine-tuning batch
    assert info["config"]["batch_size"] == 64


def test_finetuned_run_can_be_moved(tuned, tmp_path):
    """Encoders stored in the run are referenced relatively: a moved run still searches."""
    import shutil

    from unibind.search.index import build_index
    from unibind.search.space import Space

    root, _ = tuned
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(root / "run", moved)
    import json

    for meta in ("run.json", "features/features.json"):
        recorded = json.loads((moved / meta).read_text())["encoders"]
        assert str(root) not in json.dumps(recorded), meta
    run = Run.load(moved)
    for m, entry in run.encoders.items():
        assert entry["spec"]["source"] == str((moved / "encoders" / m).resolve())
    feats = load_features(run.features_path)
    text_spec = feats.meta["encoders"]["text"]["spec"]
    assert text_spec["source"] == run.encoders["text"]["spec"]["source"]
    build_index(moved)
    hits = Space.load(moved).search(text="a dog barking", k=3, modality=["image"])["results"]
    assert len(hits) == 3 and all(h["modality"] == "image" for h in hits)


def test_bf16_autocast_and_checkpointing_options(tmp_path):
    from unibind.training.finetune import autocast_dtype, enable_checkpointing

    assert autocast_dtype(torch.device("cpu")) is None  # auto: fp32 off CUDA
    assert autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ValueError):
        autocast_dtype(torch.device("cpu"), "fp8")
    model = load_encoder(resolve_profile("tiny")["text"], device="cpu").model
    assert enable_checkpointing(model) and model.is_gradient_checkpointing
    tiny_features(tmp_path, per_label=3, seconds=0.5)
    cfg = override(preset("default"), epochs=2, patience=0, finetune_batch_size=4,
                   val_fraction=0.2, test_fraction=0.2)
    summary = finetune(tmp_path / "feats", tmp_path / "run", config=cfg, threads=1,
                       precision="bf16", checkpointing=True)
    run = Run.load(tmp_path / "run")
    assert np.isfinite([c["loss"] for c in run.info["curve"]]).all()
    # stored features are plain fp32 encoder outputs (autocast covers training only)
    enc = load_encoder(run.encoders["text"]["spec"])
    feats = load_features(run.features_path)
    np.testing.assert_allclose(enc.encode(list(feats.table("text")["text"][:3])),
                               feats.arrays["text"][:3], atol=1e-4)
    assert summary["epochs"] == 2
