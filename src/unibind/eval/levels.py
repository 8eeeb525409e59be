"""Two levels of relevance, and how much each figure rests on.

- class level: a result is relevant when it has the query's label (the category);
- instance level: when it belongs to the query's group (its own picture, caption, sound: the
  thing itself), measured whenever groups link items across modalities.

A pair with no usable query is *not measured* (``None``, left out of means); a pair measured on
fewer than ``MIN_QUERIES`` queries gets a warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from unibind.eval.metrics import cross_modal_mean, is_cross_modal, pair_metrics
from unibind.features.splits import group_keys
from unibind.run.embed import Embedded

MIN_QUERIES = 20
MEANS = ("R@1", "R@5", "R@10", "mAP@10", "MRR", "medR")
INSTANCE_NOTE = "instance level: same group (the query's own picture, caption or sound)"


def groups_link(items: pd.DataFrame) -> bool:
    """Whether some group holds items of two modalities."""
    return bool((items.groupby(group_keys(items))["modality"].nunique() > 1).any())


def group_labels(emb: Embedded) -> dict[str, np.ndarray]:
    """Each embedded item's group key, per modality (instance-level relevance)."""
    return {m: group_keys(emb.table(m)).astype(str).to_numpy() for m in emb.vectors}


def means(pairs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Cross-modal means over the measured pairs, and which pairs they count."""
    out: dict[str, Any] = {k: cross_modal_mean(pairs, k) for k in MEANS}
    out["pairs_measured"] = [p for p, v in pairs.items()
                             if is_cross_modal(p) and v.get("queries")]
    return out


def level(embs: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"pairs": every query -> target pair's metrics, "cross_modal": their means}``."""
    pairs = pair_metrics(embs, labels)
    return {"pairs": pairs, "cross_modal": means(pairs)}


def coverage(pairs: dict[str, dict[str, Any]], name: str, min_queries: int = MIN_QUERIES
             ) -> tuple[list[str], list[str]]:
    """``(not measured, warnings)`` of one level's cross-modal pairs: one line per pair not
    measured, one warning naming every pair measured on fewer than ``min_queries`` queries."""
    missing, thin = [], []
    for p, v in pairs.items():
        if not is_cross_modal(p):
            continue
        n = int(v.get("queries") or 0)
        if n == 0:
            missing.append(f"{name} {p}: no query has a relevant item")
        elif n < min_queries:
            thin.append(f"{p} ({n})")
    warn = [f"{name} level: {', '.join(thin)} rest on fewer than {min_queries} queries "
            "(in brackets); read them as rough figures"] if thin else []
    return missing, warn
