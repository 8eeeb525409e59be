"""One table model for every printed table: a ``Table`` (title, columns, rows, digits) rendered
to Markdown (``metrics.md``), aligned plain text (the demo's printout) or HTML (the report), with
one number formatter."""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass, field
from typing import Any


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
