"""report.tables: one table model rendered to Markdown, text and HTML; one number formatter."""

from __future__ import annotations

import numpy as np

from unibind.eval.tables import pair_grid, shares_table
from unibind.util.tables import Table, fmt

METRICS = {
    "n_items": {"text": 4, "image": 4},
    "pairs": {f"{q}->{t}": {"R@10": 0.5 if q == t else 1.0, "queries": 4}
              for q in ("text", "image") for t in ("text", "image")},
    "mixed": {"none": {"share@10": {"text": 0.75, "image": 0.25},
                       "pool_share": {"text": 0.5, "image": 0.5}, "R@10": 0.9}},
    "mixed_check": {"none": {"share_dev": 0.25}},
}


def test_number_format():
    assert [fmt(x) for x in (0.12345, 1, np.float32(0.5), np.int64(7), None, float("nan"),
                             "x", True)] == ["0.123", "1", "0.500", "7", "-", "-", "x", "True"]
    assert fmt(0.12345, digits=1) == "0.1"


def test_one_table_three_renderings():
    t = Table("T <1>", ["name", "value"], [["a", 0.5], ["bb", None]])
    assert t.markdown() == "| name | value |\n|---|---|\n| a | 0.500 |\n| bb | - |"
    assert t.text() == "T <1>:\nname  value\na     0.500\nbb        -"
    assert t.html() == ("<table><caption>T &lt;1&gt;</caption><tr><th class=l>name</th>"
                        "<th>value</th></tr><tr><th class=l>a</th><td>0.500</td></tr>"
                        "<tr><th class=l>bb</th><td>-</td></tr></table>")


def test_metric_tables():
    grid = pair_grid(METRICS)
    assert grid.columns == ["query \\ target", "text", "image"]
    assert grid.rows == [["text", "0.500 (4)", "1.000 (4)"], ["image", "1.000 (4)", "0.500 (4)"]]
    assert "(queries)" in grid.title  # every grid says what its counts are


def test_not_measured_pairs_show_a_dash():
    metrics = {**METRICS, "pairs": {**METRICS["pairs"],
                                    "text->image": {"R@10": None, "queries": 0}}}
    assert pair_grid(metrics).rows[0] == ["text", "0.500 (4)", None]
    assert "-" in pair_grid(metrics).text().splitlines()[2]
    shares = shares_table(METRICS)
    assert shares.columns == ["mode", "share text", "share image",
                              "max dev (per query modality)", "cross-modal R@10"]
    assert shares.rows == [["none", 0.75, 0.25, 0.25, 0.9], ["(pool)", 0.5, 0.5, "", ""]]
    assert "| (pool) | 0.500 | 0.500 |  |  |" in shares.markdown()
