"""Linear maps between two embedding spaces fitted on paired vectors (text bridges).

The same sentences embedded by two text towers (CLIP-text and CLAP-text) are pairs for free:
a map fitted on them carries the first tower's whole joint space (its images too) into the
second's. Both sides are L2-normalised first (the towers compare by cosine).

- ``ridge``: ``y ~ W x + b``, closed form on centred data, ``lam`` on the scale of the data's
  mean squared norm (so it is dimension-free).
- ``procrustes``: ``W = s U V^T`` from the SVD of ``Yc^T Xc`` (orthogonal when the dims agree,
  orthonormal rows/columns otherwise) with the least-squares scale ``s``: a rotation keeps the
  geometry of the source space, which matters when there are few sentences for many dims.
- ``auto``: both (ridge over a grid of ``lam``) fitted on 80 % of the sentences, scored on the
  other 20 % by retrieval (mean reciprocal rank of each mapped sentence among the held-out
  targets), the winner refitted on all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unibind.errors import UsageError

METHODS = ("auto", "ridge", "procrustes")
RIDGE_LAMBDAS = (1e-3, 1e-2, 0.1, 1.0, 10.0)


@dataclass
class Bridge:
    """``x -> weight @ x + bias`` on unit vectors (``weight``: ``[d_out, d_in]``)."""

    weight: np.ndarray
    bias: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return _unit(x) @ self.weight.T + self.bias


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    scale = float((xc ** 2).sum(1).mean()) or 1.0
    gram = xc.T @ xc + lam * scale * np.eye(x.shape[1])
    w = np.linalg.solve(gram, xc.T @ yc).T
    return w, my - w @ mx


def _procrustes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, s, vt = np.linalg.svd(yc.T @ xc, full_matrices=False)
    rot = u @ vt
    scale = float(s.sum() / max((xc ** 2).sum(), 1e-12))
    w = scale * rot
    return w, my - w @ mx


def _fit(x: np.ndarray, y: np.ndarray, method: str, lam: float) -> tuple[np.ndarray, np.ndarray]:
    return _procrustes(x, y) if method == "procrustes" else _ridge(x, y, lam)


def retrieval_mrr(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean reciprocal rank of each ``pred[i]`` finding ``y[i]`` among all rows of ``y``."""
    sims = _unit(pred) @ _unit(y).T
    own = np.diag(sims)[:, None]
    ranks = 1 + (sims > own).sum(1)
    return float(np.mean(1.0 / ranks))


def fit_bridge(x: np.ndarray, y: np.ndarray, method: str = "auto", lam: float | None = None,
               holdout: float = 0.2, seed: int = 0) -> Bridge:
    """Fit ``y ~ W x + b`` on paired rows (``x``: ``[n, d_in]``, ``y``: ``[n, d_out]``)."""
    if method not in METHODS:
        raise UsageError(f"unknown bridge method {method!r}; choose from {', '.join(METHODS)}")
    x, y = _unit(x), _unit(y)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise UsageError(f"a bridge needs at least 2 paired rows (got {x.shape[0]} and "
                         f"{y.shape[0]})")
    candidates = ([("procrustes", 0.0)] if method in ("auto", "procrustes") else []) + \
        ([("ridge", v) for v in ((lam,) if lam is not None else RIDGE_LAMBDAS)]
         if method in ("auto", "ridge") else [])
    scores: dict[str, float] = {}
    n_val = int(round(x.shape[0] * holdout))
    if len(candidates) > 1 and n_val >= 2 and x.shape[0] - n_val >= 2:
        perm = np.random.default_rng(seed).permutation(x.shape[0])
        val, fit_rows = perm[:n_val], perm[n_val:]
        for name, value in candidates:
            w, b = _fit(x[fit_rows], y[fit_rows], name, value)
            scores[_label(name, value)] = retrieval_mrr(x[val] @ w.T + b, y[val])
        best = max(candidates, key=lambda c: scores[_label(*c)])
    else:
        best = candidates[0]
    w, b = _fit(x, y, *best)
    info = {"method": best[0], "lambda": best[1] if best[0] == "ridge" else None,
            "pairs": int(x.shape[0]), "heldout_mrr": scores,
            "train_mrr": retrieval_mrr(x @ w.T + b, y) if x.shape[0] <= 5000 else None}
    return Bridge(weight=w.astype(np.float32), bias=b.astype(np.float32), info=info)


def _label(name: str, value: float) -> str:
    return name if name == "procrustes" else f"ridge(lambda={value:g})"
