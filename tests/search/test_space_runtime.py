"""Space's query encoders run in the runtime asked for; torch and ONNX queries agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unibind.errors import UsageError
from unibind.search.space import Space


def test_query_runtimes_agree(run_path: Path) -> None:
    spaces = {rt: Space.load(run_path, runtime=rt) for rt in ("torch", "onnx")}
    assert {rt: s.encoder("text").runtime for rt, s in spaces.items()} == \
        {"torch": "torch", "onnx": "onnx"}
    texts = ["a dog barking", "rain on a tin roof at night"]
    a, b = (spaces[rt].embed("text", texts) for rt in ("torch", "onnx"))
    assert ((a * b).sum(1)).min() >= 0.9999  # unit vectors
    hits = [[r["id"] for r in spaces[rt].search(text="a dog barking", k=5)["results"]]
            for rt in ("torch", "onnx")]
    assert hits[0] == hits[1]
    assert np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)


def test_unknown_runtime_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="runtime"):
        Space.load(tmp_path / "no-run", runtime="tensorrt")
