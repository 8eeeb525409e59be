"""One Space shared by 16 threads returns exactly what serial calls return."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import unibind.encoders as encoders_mod
from tests.fixtures.media import make_media_folder
from unibind.search.index import build_index
from unibind.search.parts import Part, _fastscan_of
from unibind.search.space import Space


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    root = tmp_path_factory.mktemp("threads")
    data = make_media_folder(root / "data", per_label=3)
    manifest = build_folder_manifest(data, root / "manifest.parquet")
    extract(manifest, root / "features", profile="tiny")
    train(root / "features", root / "run", config=override(preset("default"), epochs=2))
    build_index(root / "run")
    return root / "run"


def _queries(run_path: Path) -> list[dict]:
    data = run_path.parent / "data"
    qs = []
    for label in ("dog", "rain", "bell"):
        qs += [{"text": f"a {label}"}, {"image": str(data / label / "0.png"), "k": 4},
               {"audio": str(data / label / "1.wav"), "modality": "image,text"},
               {"text": label, "image": str(data / label / "2.png"), "balance": "balanced"},
               {"text": f"the {label}", "via_pairs": 2, "balance": "balanced"}]
    return qs


def test_sixteen_threads_equal_serial(run_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queries = _queries(run_path) * 4
    serial = [Space.load(run_path).search(**q) for q in queries]
    loads: list[str] = []
    real = encoders_mod.load_encoder

    def counting(spec, *a, **kw):
        loads.append(spec["modality"] if isinstance(spec, dict) else spec.modality)
        return real(spec, *a, **kw)

    monkeypatch.setattr(encoders_mod, "load_encoder", counting)
    shared = Space.load(run_path)  # fresh: encoders and members filled lazily, by the threads
    with ThreadPoolExecutor(max_workers=16) as pool:
        parallel = list(pool.map(lambda q: shared.search(**q), queries))
    assert parallel == serial
    assert sorted(loads) == ["audio", "image", "text"]  # each encoder loaded once


def test_fastscan_part_is_not_mutated_by_search() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    part = Part.build("PQ16x4fs,RFlat", x, np.arange(4000) + 7)
    scan = _fastscan_of(part.faiss_index)
    before = scan.implem
    q = x[:64] + 0.01
    serial = [part.search(q[i:i + n], 10) for i in range(0, 48, 3) for n in (1, 8)]
    assert scan.implem == before  # a search must not change the shared index
    with ThreadPoolExecutor(max_workers=16) as pool:
        parallel = list(pool.map(lambda a: part.search(q[a[0]:a[0] + a[1]], 10),
                                 [(i, n) for i in range(0, 48, 3) for n in (1, 8)]))
    for (s1, r1), (s2, r2) in zip(serial, parallel):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(s1, s2)
