"""The tables built from a ``metrics.json`` dict: the query -> target grid, every pair's
metrics, zero-shot accuracy and the modality shares of mixed searches."""

from __future__ import annotations

from typing import Any

from unibind.util.tables import Table

PAIR_METRICS = ("R@1", "R@5", "R@10", "mAP@10", "MRR", "medR")


def modalities_of(metrics: dict[str, Any]) -> list[str]:
    """The evaluated modalities, in the order of ``n_items`` (else of the pairs)."""
    if metrics.get("n_items"):
        return list(metrics["n_items"])
    return list(dict.fromkeys(p.split("->")[0] for p in metrics.get("pairs", {})))


def level_pairs(metrics: dict[str, Any], level: str = "main") -> dict[str, Any]:
    """The pairs of ``level``: ``main`` (the run's relevance) or ``instance``."""
    if level == "instance":
        return (metrics.get("instance") or {}).get("pairs", {})
    return metrics.get("pairs", {})


def level_name(metrics: dict[str, Any], level: str = "main") -> str:
    """``class``, ``pair`` (groups without labels) or ``instance``: how a level is named."""
    if level == "instance":
        return "instance"
    return {"label": "class", "group": "pair"}.get(metrics.get("relevance", "label"), "class")


def cell(v: dict[str, Any] | None, key: str, counts: bool = True) -> str | None:
    """A grid cell: the value and its query count (``0.875 (28)``), ``-`` not measured."""
    if not v or v.get(key) is None:
        return None
    value = f"{v[key]:.3f}" if key != "medR" else f"{v[key]:g}"
    return f"{value} ({v['queries']})" if counts and "queries" in v else value


def pair_grid(metrics: dict[str, Any], key: str = "R@10", level: str = "main") -> Table:
    """``key`` of every query modality (row) -> target modality (column), each with its
    number of queries in brackets; ``-``: not measured."""
    pairs, mods = level_pairs(metrics, level), modalities_of(metrics)
    title = f"{key} query (row) -> target (column), {level_name(metrics, level)} level " \
            "(queries)"
    return Table(title, ["query \\ target", *mods],
                 [[q, *(cell(pairs.get(f"{q}->{t}"), key) for t in mods)] for q in mods])


def pairs_table(metrics: dict[str, Any], level: str = "main") -> Table:
    """Every metric of every query -> target pair, with its query count."""
    name = level_name(metrics, level)
    return Table(f"Query -> target ({name}-level relevance)",
                 ["query -> target", *PAIR_METRICS, "queries"],
                 [[pair, *(v.get(k) for k in PAIR_METRICS), v.get("queries")]
                  for pair, v in level_pairs(metrics, level).items()])


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
