"""run -> index -> results: exact kNN, index parts, the index, merge modes, pair expansion and
``Space`` (load once, search many times)."""

from __future__ import annotations

from typing import Any

_EXPORTS = {"build_index": "unibind.search.index", "open_index": "unibind.search.index",
            "add_items": "unibind.search.index", "MODES": "unibind.search.merge",
            "merge_topk": "unibind.search.merge"}


def __getattr__(name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(_EXPORTS.get(name, "unibind.search.space")), name)
