"""One table model for every printed table: a ``Table`` (title, columns, rows, digits) rendered
to Markdown (``metrics.md``), aligned plain text (the demo's printout) or HTML (the report), with
one number formatter; plus the tables built from a ``metrics.json`` dict (3x3 query -> target
grid, every pair's metrics, zero-shot accuracy, modality shares of mixed searches).
"""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

PAIR_METRICS = ("R@1", "R@5", "R@10", "mAP@10", "MRR")


def fmt(x: Any, digits: int = 3) -> str:
    """A cell: real numbers with ``digits`` decimals, ``-`` for a missing (None/NaN) value."""
    if x is None:
        return "-"
    if isinstance(x, (str, bool)):
        return str(x)
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Real):
        return "-" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


@dataclass
class Table:
    """Rows of cells under named columns; the first column names each row."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    digits: int = 3

    def cells(self) -> list[list[str]]:
        return [[fmt(c, self.digits) for c in row] for row in self.rows]

    def markdown(self) -> str:
        """A GitHub Markdown table (the title is left to the caller's heading)."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells()]
        return "\n".join(lines)

    def text(self, indent: str = "") -> str:
        """Aligned columns (row names left, values right) under ``title:``."""
        table = [self.columns, *self.cells()]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.columns))]
        lines = [f"{self.title}:"] if self.title else []
        for row in table:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            lines.append(indent + "  ".join(cells).rstrip())
        return "\n".join(lines)

    def html(self) -> str:
        """A ``<table>`` with the title as caption and the first column as row headers."""
        esc = html.escape
        cap = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        head = (f"<tr><th class=l>{esc(self.columns[0])}</th>"
                + "".join(f"<th>{esc(c)}</th>" for c in self.columns[1:]) + "</tr>")
        body = "".join(f"<tr><th class=l>{esc(row[0])}</th>"
                       + "".join(f"<td>{esc(c)}</td>" for c in row[1:]) + "</tr>"
                       for row in self.cells())
        return f"<table>{cap}{head}{body}</table>"


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
