"""Losses against loops and the CLIP formulation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unibind.training.losses import info_nce, mse_to_mean, pair_name, positives_mask, total_loss


def _unit(n, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1)


def test_instance_positives_equal_clip_loss():
    a, b = _unit(7, seed=1), _unit(7, seed=2)
    scale = torch.tensor(10.0)
    logits = scale * a @ b.T
    target = torch.arange(7)
    clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    labels = torch.zeros(7, dtype=torch.long)
    got = info_nce(a, b, scale, positives_mask(labels, labels, "instance"))
    assert got.item() == pytest.approx(clip.item(), rel=1e-6)


def test_class_positives_match_loop():
    a, b = _unit(6, seed=3), _unit(6, seed=4)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    scale = torch.tensor(5.0)
    got = info_nce(a, b, scale, positives_mask(labels, labels, "class")).item()

    def side(x, y):
        total = 0.0
        for i in range(6):
            logits = [scale.item() * float(x[i] @ y[j]) for j in range(6)]
            lse = math.log(sum(math.exp(v) for v in logits))
            pos = [j for j in range(6) if labels[j] == labels[i]]
            total += -sum(logits[j] - lse for j in pos) / len(pos)
        return total / 6

    assert got == pytest.approx(0.5 * (side(a, b) + side(b, a)), rel=1e-5)


def test_mse_to_mean_with_missing_rows():
    embs = {"text": _unit(4, seed=5), "image": _unit(4, seed=6), "audio": _unit(4, seed=7)}
    present = {"text": torch.tensor([1, 1, 1, 0]).bool(),
               "image": torch.tensor([1, 1, 0, 0]).bool(),
               "audio": torch.tensor([1, 0, 1, 1]).bool()}
    got = mse_to_mean(embs, present).item()
    rows = []
    for i in range(4):
        here = [m for m in embs if present[m][i]]
        if len(here) < 2:
            continue
        mean = sum(embs[m][i] for m in here) / len(here)
        rows.append(sum(float(((embs[m][i] - mean) ** 2).mean()) for m in here))
    assert got == pytest.approx(sum(rows) / len(rows), rel=1e-5)


def test_total_loss_weights_pairs_and_skips_missing():
    embs = {m: _unit(5, seed=s) for m, s in (("text", 8), ("image", 9), ("audio", 10))}
    present = {"text": torch.ones(5, dtype=torch.bool), "image": torch.ones(5, dtype=torch.bool),
               "audio": torch.tensor([1, 0, 0, 0, 0]).bool()}  # one audio row: pair skipped
    labels = torch.arange(5)
    scale = torch.tensor(3.0)
    weights = {"text-image": 0.3, "text-audio": 0.3, "image-audio": 0.3}
    loss, parts = total_loss(embs, present, labels, scale, weights, "instance", mse_weight=0.1)
    assert set(parts) == {"text-image", "mse"}
    want = 0.3 * parts["text-image"] + 0.1 * parts["mse"]
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert pair_name("audio", "text") == "text-audio"


def test_loss_gradient_pulls_pairs_together():
    a = _unit(8, seed=11).requires_grad_(True)
    b = _unit(8, seed=12)
    labels = torch.arange(8)
    loss = info_nce(a, b, torch.tensor(10.0), positives_mask(labels, labels, "instance"))
    loss.backward()
    with torch.no_grad():
        stepped = F.normalize(a - 0.1 * a.grad, dim=-1)
        after = info_nce(stepped, b, torch.tensor(10.0), positives_mask(labels, labels, "instance"))
    assert after < loss
    with pytest.raises(ValueError, match="positives"):
        positives_mask(labels, labels, "group")
