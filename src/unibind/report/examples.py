"""Example queries for a report when none were given: the collection's own captions, else its
labels as text, else a few of its items as queries (a picture, a sound), each searched in the
run's index."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from unibind.errors import UnibindError
from unibind.modalities import get_modality

log = logging.getLogger(__name__)


def _spread(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n)``."""
    return sorted({int(i) for i in np.linspace(0, n - 1, num=min(n, count))}) if n else []


def pick_example_queries(items: Any, modalities: list[str], root: Path, count: int = 3
                         ) -> list[dict[str, Any]]:
    """``[{modality: [input]}]``: captions when the index holds text, else labels as text
    (when the run embeds text), else ``count`` items of the other kinds by their files."""
    texts = items[items["modality"].map(lambda m: get_modality(m).inline)]
    if len(texts) and any(get_modality(m).inline for m in modalities):
        m = str(texts.iloc[0]["modality"])
        rows = texts[texts["modality"] == m]
        return [{m: [str(rows.iloc[i]["text"])]} for i in _spread(len(rows), count)]
    labels = sorted({str(x) for x in items["label"] if str(x).strip()})
    inline = [m for m in modalities if get_modality(m).inline]
    if labels and inline:
        return [{inline[0]: [labels[i]]} for i in _spread(len(labels), count)]
    out: list[dict[str, Any]] = []
    files = items[items["modality"].isin(modalities) & (items["path"].astype(str) != "")]
    kinds = list(dict.fromkeys(files["modality"]))
    for j, m in enumerate(kinds):
        rows = files[files["modality"] == m]
        share = count // len(kinds) + (1 if j < count % len(kinds) else 0)
        out += [{m: [str(root / rows.iloc[i]["path"])]} for i in _spread(len(rows), share)]
    return out


def default_examples(run_path: str | os.PathLike, k: int = 5, count: int = 3
                     ) -> list[dict[str, Any]]:
    """Search results for ``pick_example_queries`` in the run's index; [] when the run has no
    index or its encoders are not available (the report says how to add examples)."""
    from unibind.search.space import Space

    try:
        space = Space.load(run_path)
        root = space.run.load_features().manifest_path.parent
    except (UnibindError, OSError, ValueError) as exc:
        log.info("no example queries: %s", exc)
        return []
    items = space.index.items
    out = []
    for query in pick_example_queries(items, space.run.modalities, root, count):
        try:
            result = space.search(k=k + 1, **query)
        except (UnibindError, OSError, ValueError, ImportError) as exc:
            log.info("example query %s skipped: %s", query, exc)
            continue
        given = {str(v) for vals in query.values() for v in vals}
        result["results"] = [r for r in result["results"]  # not the query item itself
                             if str(root / r.get("path", "")) not in given][:k]
        for rank, r in enumerate(result["results"], start=1):
            r["rank"] = rank
        out.append(result)
    return out
