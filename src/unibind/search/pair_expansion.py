"""Pair expansion: reach items through paired anchors of the query's own modality.

Same-modality similarity (caption to caption, sound to sound) comes straight from a pretrained
encoder and is usually far more reliable than the cross-modal similarity heads learn from a few
hundred pairs. With ``anchors=m`` a single-modality query also takes its ``m`` nearest items of its
own modality; every item that shares a ``group`` with an anchor (image k and sound k of caption k)
becomes a candidate carrying the anchor's score. Direct and anchored scores are put on one scale
by standardising each with the run's calibration statistics (mean and std of query->target scores
on training data); an item keeps its best standardised score.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from unibind.errors import UsageError


class Searchable(Protocol):
    """What pair expansion needs from an index: its item table and a per-modality search."""
    items: pd.DataFrame

    def search(self, q: np.ndarray, k: int, modalities: list[str] | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]: ...


def group_members(items: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """``{modality: {group: global rows}}`` over the items that have a group."""
    grouped = items[items["group"].astype(str) != ""]
    out: dict[str, dict[str, np.ndarray]] = {}
    for (modality, group), rows in grouped.groupby(["modality", "group"]).groups.items():
        out.setdefault(modality, {})[group] = np.asarray(rows, dtype=np.int64)
    return out


def _z(scores: np.ndarray, stats: tuple[float, float]) -> np.ndarray:
    mean, std = stats
    return (np.asarray(scores, dtype=np.float64) - float(mean)) / max(float(std), 1e-12)


def expand_via_pairs(index: Searchable, q: np.ndarray, query_modality: str, targets: list[str],
                     k: int, anchors: int, calibration: dict[str, tuple[float, float]],
                     members: dict[str, dict[str, np.ndarray]]
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per target modality: (standardised scores [nq, k] descending, global rows [nq, k]).

    ``calibration[m]`` = (mean, std) of ``query_modality`` -> m scores; absent slots hold
    (-inf, -1)."""
    missing = [m for m in {*targets, query_modality} if m not in calibration]
    if missing:
        raise UsageError(f"pair expansion needs calibration stats for {missing}")
    direct = index.search(q, k, targets)
    anchor_s, anchor_r = index.search(q, anchors, [query_modality])[query_modality]
    anchor_z = _z(anchor_s, calibration[query_modality])
    groups = index.items["group"].astype(str).to_numpy()
    out = {}
    for t in targets:
        scores = np.full((len(q), k), -np.inf)
        rows = np.full((len(q), k), -1, dtype=np.int64)
        direct_z = _z(direct[t][0], calibration[t])
        for i in range(len(q)):
            best: dict[int, float] = {}
            for z, row in zip(direct_z[i], direct[t][1][i]):
                if row >= 0 and np.isfinite(z):
                    best[int(row)] = max(best.get(int(row), -np.inf), float(z))
            if t != query_modality:
                for z, row in zip(anchor_z[i], anchor_r[i]):
                    if row < 0 or not np.isfinite(z):
                        continue
                    for member in members.get(t, {}).get(groups[row], ()):
                        best[int(member)] = max(best.get(int(member), -np.inf), float(z))
            ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            for j, (row, z) in enumerate(ranked):
                scores[i, j], rows[i, j] = z, row
        out[t] = (scores, rows)
    return out
