"""The tables built from a ``metrics.json`` dict: the query -> target grid, every pair's
metrics, zero-shot accuracy and the modality shares of mixed searches."""

from __future__ import annotations

from typing import Any

from unibind.util.tables import Table

PAIR_METRICS = ("R@1", "R@5", "R@10", "mAP@10", "MRR")


def modalities_of(metrics: dict[str, Any]) -> list[str]:
    """The evaluated modalities, in the order of ``n_items`` (else of the pairs)."""
    if metrics.get("n_items"):
        return list(metrics["n_items"])
    return list(dict.fromkeys(p.split("->")[0] for p in metrics.get("pairs", {})))


def pair_grid(metrics: dict[str, Any], key: str = "R@10") -> Table:
    """``key`` of every query modality (row) -> target modality (column)."""
    pairs, mods = metrics.get("pairs", {}), modalities_of(metrics)
    return Table(f"{key} query (row) -> target (column)", ["query \\ target", *mods],
                 [[q, *(pairs.get(f"{q}->{t}", {}).get(key) for t in mods)] for q in mods])


def pairs_table(metrics: dict[str, Any]) -> Table:
    """Every metric of every query -> target pair (class-level relevance)."""
    return Table("Query -> target (class-level relevance)",
                 ["query -> target", *PAIR_METRICS, "queries"],
                 [[pair, *(v.get(k) for k in PAIR_METRICS), v.get("queries")]
                  for pair, v in metrics.get("pairs", {}).items()])


def zero_shot_table(metrics: dict[str, Any]) -> Table:
    """The zero-shot accuracy table (one row per modality)."""
    return Table("Zero-shot classification", ["modality", "accuracy"],
                 [[m, a] for m, a in (metrics.get("zero_shot") or {}).items()])


def shares_table(metrics: dict[str, Any]) -> Table:
    """Per mixed-search mode: each modality's share of the top 10 (and its pool share), the
    worst share deviation per query modality (when measured) and cross-modal R@10."""
    mixed = metrics.get("mixed") or {}
    mods = list(next(iter(mixed.values()))["share@10"]) if mixed else []
    check = metrics.get("mixed_check") or {}
    dev = ["max dev (per query modality)"] if check else []
    rows = [[mode, *(r["share@10"].get(m) for m in mods),
             *([check.get(mode, {}).get("share_dev")] if check else []), r.get("R@10")]
            for mode, r in mixed.items()]
    if mixed:
        pool = next(iter(mixed.values())).get("pool_share", {})
        rows.append(["(pool)", *(pool.get(m) for m in mods), *([""] if check else []), ""])
    return Table("Modality shares in a mixed top-10",
                 ["mode", *(f"share {m}" for m in mods), *dev, "cross-modal R@10"], rows)
