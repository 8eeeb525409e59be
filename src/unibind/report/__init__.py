"""run -> pictures and pages: UMAP plots, tables, the HTML report and the demo."""

from __future__ import annotations

from typing import Any

_EXPORTS = {"plot_run": "unibind.report.plots", "run_demo": "unibind.demo"}


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(_EXPORTS.get(name, "unibind.report.html")), name)
