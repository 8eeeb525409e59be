"""The one projection path: encoder features -> unit vectors in the shared space.

``embed_items`` projects the items of a features set through heads (optionally only the items of
a mask, a per-modality subsample, centred); ``project`` does one matrix. ``Run.embed`` /
``Run.project`` call them with a run's heads and centres; training validates with them on the
heads it is training (``encode`` then supplies the encoder features, e.g. of encoders being
fine-tuned). Evaluation, indexing, plots and calibration all read their vectors from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from unibind.features.folder import Features
from unibind.run.heads import Heads

Encode = Callable[[str, np.ndarray], np.ndarray]  # (modality, matrix rows) -> encoder features


@dataclass
class Embedded:
    """Embedded items: ``items`` (modality by modality, each in matrix-row order) and one matrix
    of unit vectors per modality, row ``i`` being the ``i``-th item of that modality."""

    items: pd.DataFrame
    vectors: dict[str, np.ndarray]

    @property
    def modalities(self) -> list[str]:
        return list(self.vectors)

    def table(self, modality: str) -> pd.DataFrame:
        """The items of one modality, aligned with ``vectors[modality]``."""
        return self.items[self.items["modality"] == modality]

    @property
    def labels(self) -> dict[str, np.ndarray]:
        return {m: self.table(m)["label"].astype(str).to_numpy() for m in self.vectors}

    def matrix(self) -> np.ndarray:
        """Every vector in ``items`` order."""
        return np.concatenate([self.vectors[m] for m in self.vectors])

    def __len__(self) -> int:
        return len(self.items)


def center(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract a modality's centre and re-normalise (closes the modality gap)."""
    out = np.asarray(x, dtype=np.float32) - mean
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32, copy=False)


@contextlib.contextmanager
def eval_mode(heads: Heads) -> Iterator[None]:
    """Heads in eval mode (no dropout) without gradients; the previous mode is restored."""
    was = heads.training
    heads.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        heads.train(was)


def project(heads: Heads, modality: str, x: np.ndarray, mean: np.ndarray | None = None,
            batch: int = 65536) -> np.ndarray:
    """Encoder features ``[n, d_m]`` -> unit vectors ``[n, D]`` (float32); ``mean``: centre."""
    x = np.asarray(x, dtype=np.float32)
    device = next(heads.parameters()).device
    out = np.empty((x.shape[0], heads.cfg.embed_dim), dtype=np.float32)
    with eval_mode(heads):
        for start in range(0, x.shape[0], batch):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch])).to(device)
            out[start:start + batch] = heads.embed(modality, chunk).float().cpu().numpy()
    return out if mean is None else center(out, mean)


def embed_items(heads: Heads, feats: Features, mask: np.ndarray | None = None,
                max_per_modality: int = 0, seed: int = 0,
                centers: dict[str, np.ndarray] | None = None,
                encode: Encode | None = None) -> Embedded:
    """Project the items of ``feats`` (those of ``mask``, when given) that ``heads`` has a head
    for; ``max_per_modality``: a random subsample of each modality (``seed``); ``centers``:
    centre and re-normalise; ``encode(m, rows)``: encoder features of matrix rows (default: the
    stored features)."""
    items = feats.items if mask is None else feats.items[np.asarray(mask, dtype=bool)]
    rng = np.random.default_rng(seed)
    tables, vectors = [], {}
    for m in feats.modalities:
        if m not in heads.modalities:
            continue
        sub = items[items["modality"] == m].sort_values("row", kind="stable")
        if max_per_modality and len(sub) > max_per_modality:
            sub = sub.iloc[np.sort(rng.choice(len(sub), max_per_modality, replace=False))]
        if not len(sub):
            continue
        rows = sub["row"].to_numpy()
        x = encode(m, rows) if encode is not None else feats.arrays[m][rows]
        vectors[m] = project(heads, m, x, None if centers is None else centers[m])
        tables.append(sub)
    frame = pd.concat(tables, ignore_index=True) if tables else items.iloc[:0]
    return Embedded(items=frame, vectors=vectors)
