"""Residual heads from a bound run: the text block is kept, own-space blocks are not."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from unibind.binding.layout import block_reach, identity_block, pad_output
from unibind.run.heads import Heads, HeadsConfig
from unibind.training.bound_start import interpolate, residual_heads, text_block
from unibind.training.config import preset

LINEAR = {"kind": "linear", "normalize_input": True}


def bound_run(text_dim: int = 4, image_dim: int = 6, audio_dim: int = 3) -> SimpleNamespace:
    """A bound run's heads as ``bind`` lays them out: text and image in the text block, audio
    in a block of its own after it."""
    embed_dim = text_dim + audio_dim
    dims = {"text": text_dim, "image": image_dim, "audio": audio_dim}
    heads = Heads(HeadsConfig(dims=dims, embed_dim=embed_dim, hidden=0,
                              kinds={m: LINEAR for m in dims}))
    torch.manual_seed(0)
    image = {"1.weight": torch.randn(text_dim, image_dim), "1.bias": torch.zeros(text_dim)}
    text = {"1.weight": torch.eye(text_dim), "1.bias": torch.zeros(text_dim)}
    heads.proj["text"].load_state_dict(pad_output(text, embed_dim))
    heads.proj["image"].load_state_dict(pad_output(image, embed_dim))
    heads.proj["audio"].load_state_dict(identity_block(audio_dim, text_dim, embed_dim))
    return SimpleNamespace(heads=heads, reach=block_reach(["text", "image"], ["audio"]),
                           modalities=list(dims), path="bound")


def test_own_space_modality_gets_an_ordinary_head_in_the_text_block():
    run = bound_run()
    assert text_block(run) == (["text", "image"], 4)
    feats = SimpleNamespace(modalities=["text", "image", "audio"],
                            dims={"text": 4, "image": 6, "audio": 3})
    start = residual_heads(run, feats, preset("default"))
    assert start.cfg.embed_dim == 4
    assert start.cfg.kinds["text"]["kind"] == "residual"
    assert start.cfg.kinds["image"]["kind"] == "residual"
    assert "audio" not in start.cfg.kinds  # a new MLP head: the identity block says nothing
    start.eval()
    x = torch.randn(5, 6)
    with torch.no_grad():  # the start is the bound run's text block exactly
        torch.testing.assert_close(start.proj["image"](x), run.heads.proj["image"](x)[:, :4])


def test_wise_ft_leaves_heads_outside_the_text_block_as_trained():
    run = bound_run()
    feats = SimpleNamespace(modalities=["text", "image", "audio"],
                            dims={"text": 4, "image": 6, "audio": 3})
    start = residual_heads(run, feats, preset("default"))
    trained = residual_heads(run, feats, preset("default"))
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    mixed = interpolate(start, trained, 0.0, text_block(run)[0])
    for key, value in mixed.state_dict().items():
        bound = key.startswith("proj.") and key.split(".")[1] in ("text", "image")
        want = (start if bound else trained).state_dict()[key]
        torch.testing.assert_close(value, want)


def test_runs_without_own_blocks_keep_every_head():
    run = bound_run()
    run.reach = {m: ["text", "image", "audio"] for m in ("text", "image", "audio")}
    assert text_block(run) == (["text", "image", "audio"], 7)
