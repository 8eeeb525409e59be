"""Index: exact and modality-filtered search vs numpy brute force, factories, provenance, add."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.media import make_media_folder
from tests.fixtures.runs import synthetic_run
from unibind.run.folder import Run
from unibind.search.index import (
    IndexMismatch,
    SpaceIndexError,
    add_items,
    build_index,
    load_index,
    open_index,
)
from unibind.search.parts import EXACT, choose_factory

DIMS = {"text": 12, "image": 10, "audio": 8}
SIZES = {"text": 60, "image": 45, "audio": 30}


@pytest.fixture
def run_path(tmp_path: Path) -> Path:
    return synthetic_run(tmp_path)


def projected(run: Run) -> dict[str, np.ndarray]:
    from unibind.features.folder import load_features

    feats = load_features(run.features_path)
    return {m: run.project(m, feats.arrays[m][feats.table(m)["row"].to_numpy()]) for m in DIMS}


def brute(vectors: dict[str, np.ndarray], q: np.ndarray, k: int, mods: list[str]):
    """(scores, (modality, local row)) of the top k over the union of ``mods``."""
    pool = [(m, i, float(v)) for m in mods for i, v in enumerate(vectors[m] @ q)]
    pool.sort(key=lambda t: -t[2])
    return pool[:k]


def test_exact_and_filtered_search_match_brute_force(run_path: Path):
    summary = build_index(run_path)
    assert summary["count"] == sum(SIZES.values())
    assert {p["factory"] for p in summary["parts"].values()} == {EXACT}
    run = Run.load(run_path)
    index = open_index(run)
    vecs = projected(run)
    offsets = {m: int(np.flatnonzero(index.items["modality"] == m)[0]) for m in DIMS}
    rng = np.random.default_rng(1)
    for mods in (["text", "image", "audio"], ["audio"], ["image", "audio"]):
        q = rng.standard_normal(16).astype(np.float32)
        q /= np.linalg.norm(q)
        per = index.search(q[None], 7, mods)
        assert set(per) == set(mods)
        merged = sorted(((float(s), int(r)) for m in mods for s, r in zip(*[a[0] for a in per[m]])),
                        key=lambda t: -t[0])[:7]
        want = brute(vecs, q, 7, mods)
        assert [r for _, r in merged] == [offsets[m] + i for m, i, _ in want]
        np.testing.assert_allclose([s for s, _ in merged], [s for *_, s in want], atol=1e-5)
        for m in mods:  # per-modality lists hold only that modality
            assert (index.items.iloc[per[m][1][0]]["modality"] == m).all()


def test_metadata_beside_index(run_path: Path):
    build_index(run_path)
    index = load_index(run_path / "index")
    assert list(index.items.columns[:3]) == ["id", "modality", "label"]
    assert index.items["id"].is_unique and len(index) == sum(SIZES.values())
    assert index.meta["provenance"]["head_digest"] == Run.load(run_path).head_digest


def test_choose_factory_by_size_and_budget():
    assert choose_factory(10_000, 256, 4 * 2**30) == EXACT
    assert choose_factory(300_000, 256, 4 * 2**30) == "PQ128x4fs,RFlat"
    assert choose_factory(2_000_000, 256, 1 * 2**30) == "PQ128x4fs,Refine(SQ8)"
    assert choose_factory(50_000_000, 256, 4 * 2**30).startswith("IVF")
    with pytest.raises(SpaceIndexError, match="budget"):
        choose_factory(10**9, 256, 2**20)


def test_approximate_factory_roundtrip(tmp_path: Path):
    run_path = synthetic_run(tmp_path)
    build_index(run_path, factory="HNSW16")
    index = open_index(Run.load(run_path))
    assert index.parts["text"].factory == "HNSW16"
    vecs = projected(Run.load(run_path))
    q = vecs["image"][:5]
    got = index.search(q, 5, ["text"])["text"][1]
    want = np.argsort(-(q @ vecs["text"].T), axis=1)[:, :5]
    recall = np.mean([len(set(g) & set(w)) / 5 for g, w in zip(got, want)])
    assert recall >= 0.9  # tiny collection: HNSW is (nearly) exact


def test_index_from_another_run_is_refused(tmp_path: Path):
    run_a = synthetic_run(tmp_path, seed=0)
    run_b = synthetic_run(tmp_path, seed=1)
    build_index(run_a)
    with pytest.raises(IndexMismatch, match="head digest"):
        open_index(Run.load(run_b), run_a / "index")
    other = synthetic_run(tmp_path / "x", seed=0, fingerprint="other")
    with pytest.raises(IndexMismatch, match="fingerprint"):
        open_index(Run.load(other), run_a / "index")


def test_missing_index_is_a_clear_error(run_path: Path):
    with pytest.raises(SpaceIndexError, match="unibind index"):
        open_index(Run.load(run_path))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny-profile run trained on 2 of 3 labels; the manifest of all three."""
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    root = tmp_path_factory.mktemp("tiny-index")
    make_media_folder(root / "data", per_label=4)
    full = build_folder_manifest(root / "data", root / "all.parquet")
    import pandas as pd

    table = pd.read_parquet(full)
    part = root / "part.parquet"
    table[table["label"] != "bell"].to_parquet(part, index=False)
    extract(part, root / "features", profile="tiny")
    train(root / "features", root / "run", config=override(preset("default"), epochs=2))
    return root / "run", full


def test_add_without_rebuild_equals_full_index(tiny_run: tuple[Path, Path], tmp_path: Path):
    run_path, full = tiny_run
    build_index(run_path, out=tmp_path / "grown")
    before = load_index(tmp_path / "grown")
    summary = add_items(run_path, full, index_path=tmp_path / "grown")
    assert summary["added"] == 12 and summary["skipped"] == 24  # the 4 bell triples are new
    grown = load_index(tmp_path / "grown")
    assert len(grown) == len(before) + 12
    pd_old = grown.items.iloc[:len(before)]
    assert pd_old["id"].tolist() == before.items["id"].tolist()  # old rows kept in place
    again = add_items(run_path, full, index_path=tmp_path / "grown")
    assert again["added"] == 0
    # the same vectors as projecting everything from scratch
    from unibind.features.extract import extract
    from unibind.features.folder import load_features

    extract(full, tmp_path / "allfeat", profile="tiny")
    build_index(run_path, out=tmp_path / "rebuilt", features=load_features(tmp_path / "allfeat"))
    rebuilt = load_index(tmp_path / "rebuilt")
    q = np.eye(Run.load(run_path).embed_dim, dtype=np.float32)[:3]
    for m in grown.modalities:  # k covers every item: compare each item's score
        gs, gr = grown.search(q, 30, [m])[m]
        rs, rr = rebuilt.search(q, 30, [m])[m]
        for qi in range(len(q)):
            got = dict(zip(grown.items.iloc[gr[qi][gr[qi] >= 0]]["id"], gs[qi]))
            want = dict(zip(rebuilt.items.iloc[rr[qi][rr[qi] >= 0]]["id"], rs[qi]))
            assert got.keys() == want.keys()
            np.testing.assert_allclose([got[i] for i in want], list(want.values()), atol=1e-6)


def test_index_cli_build_and_add(tiny_run: tuple[Path, Path], tmp_path: Path):
    import json

    from typer.testing import CliRunner

    from unibind.cli import app

    run_path, full = tiny_run
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(run_path), "--out", str(tmp_path / "ix"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["count"] == 24
    res = runner.invoke(app, ["index", "add", str(run_path), str(full), "--index",
                              str(tmp_path / "ix"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["added"] == 12 and out["count"] == 36
    res = runner.invoke(app, ["index", "add", str(run_path)])
    assert res.exit_code == 2 and "MANIFEST" in res.output
