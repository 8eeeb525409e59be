"""Triplets for training: one item per modality per group, classes mixed, modalities may be missing.

A group (image k, caption k, audio k) is the unit; when a group holds several items of a modality,
each epoch draws one of them at random. When no group links two modalities at all (a manifest
without groups), items are paired within their label instead (the i-th shuffled item of each
modality forms a pseudo-group), which is what class positives need.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from unibind.features.splits import group_keys

log = logging.getLogger(__name__)


@dataclass
class Triplets:
    """Groups x modalities; ``sample(rng)`` gives each group's row per modality (-1: missing)."""

    modalities: list[str]
    labels: np.ndarray  # int code per group
    label_names: list[str]
    starts: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    item_rows: dict[str, np.ndarray]
    pseudo: bool = False

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for m in self.modalities:
            counts = self.counts[m]
            pick = self.starts[m] + np.floor(rng.random(self.n_groups) * counts).astype(np.int64)
            rows = self.item_rows[m]
            safe = np.clip(pick, 0, max(len(rows) - 1, 0))
            out[m] = np.where(counts > 0, rows[safe] if len(rows) else -1, -1)
        return out

    @classmethod
    def from_items(cls, items: pd.DataFrame, modalities: list[str], seed: int = 0) -> Triplets:
        items = items[items["modality"].isin(modalities)].reset_index(drop=True)
        keys = group_keys(items)
        linked = items.groupby(keys)["modality"].nunique()
        pseudo = len(modalities) > 1 and bool((linked < 2).all())
        if pseudo:
            log.info("no group links two modalities: pairing items within their label instead")
            keys = _pseudo_groups(items, seed)
        codes, uniq = pd.factorize(keys, sort=True)
        n_groups = len(uniq)
        first_label = pd.Series(items["label"].astype(str).to_numpy()).groupby(codes).first()
        label_names = sorted(set(first_label))
        lab_index = {name: i for i, name in enumerate(label_names)}
        labels = first_label.map(lab_index).to_numpy(dtype=np.int64)
        starts, counts, item_rows = {}, {}, {}
        for m in modalities:
            mask = (items["modality"] == m).to_numpy()
            g, r = codes[mask], items.loc[mask, "row"].to_numpy(dtype=np.int64)
            order = np.lexsort((r, g))
            counts[m] = np.bincount(g, minlength=n_groups)
            starts[m] = np.cumsum(counts[m]) - counts[m]
            item_rows[m] = r[order]
        return cls(modalities=modalities, labels=labels, label_names=label_names, starts=starts,
                   counts=counts, item_rows=item_rows, pseudo=pseudo)


def _pseudo_groups(items: pd.DataFrame, seed: int) -> pd.Series:
    h = items["id"].astype(str).map(
        lambda s: hashlib.sha1(f"{seed}:{s}".encode()).hexdigest())
    rank = h.groupby([items["label"], items["modality"]]).rank(method="first").astype(int)
    return items["label"].astype(str) + "#" + rank.astype(str)
