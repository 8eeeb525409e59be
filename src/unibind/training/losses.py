"""Contrastive losses over modality pairs (pure functions on tensors).

- ``positives_mask``: ``instance`` (row i of one modality matches row i of the other: the same
  group) or ``class`` (every same-label row is a positive; multi-positive / SupCon style).
- ``both`` (in ``total_loss``): the instance term plus ``class_weight`` x the class term.
- ``info_nce``: symmetric InfoNCE with a positives mask; with the identity mask it is CLIP's loss.
- ``mse_to_mean``: pull each modality's embedding towards the per-sample mean of the modalities
  present (the reference's 0.1 x MSE term).
- ``total_loss``: weighted sum over pairs, skipping rows where a modality is missing.
"""

from __future__ import annotations

from itertools import combinations

import torch

from unibind.errors import UsageError, unknown
from unibind.modalities import MODALITIES

POSITIVES = ("instance", "class", "both")


def pair_name(a: str, b: str) -> str:
    """Canonical pair key in ``MODALITIES`` order, e.g. ``text-image``."""
    a, b = sorted((a, b), key=MODALITIES.index)
    return f"{a}-{b}"


def modality_pairs(modalities: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair of the given modalities, in registry order."""
    ordered = [m for m in MODALITIES if m in modalities]
    return list(combinations(ordered, 2))


def positives_mask(labels_a: torch.Tensor, labels_b: torch.Tensor, kind: str) -> torch.Tensor:
    """Boolean ``[n_a, n_b]``: which b rows are positives of each a row."""
    if kind == "instance":
        if len(labels_a) != len(labels_b):
            raise UsageError("instance positives need aligned rows")
        return torch.eye(len(labels_a), dtype=torch.bool, device=labels_a.device)
    if kind == "class":
        return labels_a[:, None] == labels_b[None, :]
    raise unknown("positives", kind, POSITIVES)


def _one_side(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    logp = logits.log_softmax(dim=1)
    per_row = (logp * pos).sum(dim=1) / pos.sum(dim=1).clamp(min=1)
    has = pos.any(dim=1)
    return -(per_row[has]).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor,
             pos: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE between unit rows ``a [n, D]`` and ``b [n, D]``.

    Each side averages ``-log softmax`` over the positives of a row (SupCon's "out" form)."""
    logits = scale * (a @ b.T)
    return 0.5 * (_one_side(logits, pos) + _one_side(logits.T, pos.T))


def mse_to_mean(embs: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over modalities of the mean squared distance to the per-row mean of present ones."""
    mods = list(embs)
    mask = torch.stack([present[m].float() for m in mods], dim=0)  # [M, n]
    stack = torch.stack([embs[m] for m in mods], dim=0)  # [M, n, D]
    count = mask.sum(dim=0)  # [n]
    mean = (stack * mask[..., None]).sum(dim=0) / count.clamp(min=1)[:, None]
    rows = count >= 2
    if not rows.any():
        return stack.sum() * 0.0
    sq = ((stack - mean[None]) ** 2).mean(dim=-1) * mask  # [M, n]
    return sq[:, rows].sum(dim=0).mean()


def total_loss(embs: dict[str, torch.Tensor], present: dict[str, torch.Tensor],
               labels: torch.Tensor, scale: torch.Tensor, weights: dict[str, float],
               positives: str = "instance", mse_weight: float = 0.0,
               class_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted pair losses on a batch of triplets (rows aligned across modalities).

    ``embs[m]`` is ``[n, D]`` (rows of missing items are ignored), ``present[m]`` a bool ``[n]``,
    ``labels`` int ``[n]``. Returns the loss and its parts (floats, for logging)."""
    total = scale * 0.0
    parts: dict[str, float] = {}
    for a, b in modality_pairs(list(embs)):
        w = weights.get(pair_name(a, b), 0.0)
        both = present[a] & present[b]
        if w == 0 or int(both.sum()) < 2:
            continue
        lab = labels[both]
        ea, eb = embs[a][both], embs[b][both]
        if positives == "both":
            loss = (info_nce(ea, eb, scale, positives_mask(lab, lab, "instance"))
                    + class_weight * info_nce(ea, eb, scale, positives_mask(lab, lab, "class")))
        else:
            loss = info_nce(ea, eb, scale, positives_mask(lab, lab, positives))
        total = total + w * loss
        parts[pair_name(a, b)] = float(loss.detach())
    if mse_weight > 0:
        mse = mse_to_mean(embs, present)
        total = total + mse_weight * mse
        parts["mse"] = float(mse.detach())
    return total, parts
