"""Milvus store (Milvus Lite in a temporary folder) vs the faiss Flat index of the same run:
same ids and scores per modality, in every balance mode and with pair expansion; provenance
refusal; index add; CLI; bad URIs and a file held by another process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("pymilvus", reason="Milvus store tests need pymilvus: "
                    "pip install 'unibind[milvus]'")
pytest.importorskip("milvus_lite", reason="Milvus store tests need milvus-lite: "
                    "pip install 'unibind[milvus]'")

from tests.fixtures.media import make_media_folder  # noqa: E402
from tests.fixtures.runs import synthetic_run  # noqa: E402
from unibind.cli import app  # noqa: E402
from unibind.run.folder import Run  # noqa: E402
from unibind.search.index import IndexMismatch, add_items, build_index, open_index  # noqa: E402
from unibind.search.space import Space  # noqa: E402
from unibind.search.stores import StoreError, VectorStore, open_store, parse_store_uri  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _close_stores():
    """Stop this module's Milvus Lite servers while pytest's streams are still open."""
    yield
    from unibind.search.stores.milvus import close_clients

    close_clients()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny-profile run trained without the "bell" items, its faiss index and its Milvus
    Lite store; ``full`` is the manifest with the bell items (for ``index add``)."""
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    root = tmp_path_factory.mktemp("tiny-milvus")
    make_media_folder(root / "data", per_label=4)
    full = build_folder_manifest(root / "data", root / "all.parquet")
    table = pd.read_parquet(full)
    table[table["label"] != "bell"].to_parquet(root / "part.parquet", index=False)
    # its own feature cache: vectors cached by other tests' batches would shift near-ties
    extract(root / "part.parquet", root / "features", profile="tiny", cache_dir=root / "cache")
    train(root / "features", root / "run", config=override(preset("default"), epochs=2))
    build_index(root / "run", factory="Flat")
    uri = f"milvus://{root}/store.db"
    build_index(root / "run", store=uri)
    return {"root": root, "run": root / "run", "full": full, "uri": uri}


def unit_queries(n: int, dim: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def assert_same(faiss_side: tuple, milvus_side: tuple) -> None:
    (fs, fr), (ms, mr) = faiss_side[:2], milvus_side[:2]
    np.testing.assert_array_equal(fr, mr)
    np.testing.assert_allclose(fs, ms, atol=1e-5)


def test_store_satisfies_the_interface_and_keeps_items(tiny: dict[str, Path]):
    run = Run.load(tiny["run"])
    folder, store = open_index(run), open_index(run, tiny["uri"])
    assert isinstance(folder, VectorStore) and isinstance(store, VectorStore)
    assert len(store) == len(folder) and store.pool_sizes() == folder.pool_sizes()
    assert store.modalities == folder.modalities and store.center == folder.center
    pd.testing.assert_frame_equal(store.items, folder.items[list(store.items.columns)])
    rows = np.array([5, 0, len(folder) - 1])
    pd.testing.assert_frame_equal(open_store(tiny["uri"]).lookup(rows), folder.lookup(rows))


def test_per_modality_search_equals_faiss_flat(tiny: dict[str, Path]):
    run = Run.load(tiny["run"])
    folder, store = open_index(run), open_index(run, tiny["uri"])
    q = unit_queries(4, run.embed_dim)
    for mods in ([m] for m in folder.modalities):
        for k in (1, 5, 100):  # 100 > every pool: padded with (-inf, -1) on both sides
            f, s = folder.search(q, k, mods), store.search(q, k, mods)
            for m in mods:
                assert_same(f[m], s[m])


@pytest.mark.parametrize("mode", ["none", "balanced", "calibrated", "centered"])
def test_mixed_and_balanced_modes_equal_faiss_flat(tiny: dict[str, Path], mode: str):
    run = Run.load(tiny["run"])
    center = mode == "centered"
    if center:  # the centred mode needs centred vectors on both sides
        build_index(tiny["run"], out=tiny["root"] / "centred", factory="Flat", center=True)
        build_index(tiny["run"], store=tiny["uri"] + "?collection=centred", center=True)
        folder = Space.load(tiny["run"], tiny["root"] / "centred")
        store = Space.load(tiny["run"], tiny["uri"] + "?collection=centred")
    else:
        folder, store = Space.load(tiny["run"]), Space.load(tiny["run"], tiny["uri"])
    q = unit_queries(3, run.embed_dim, seed=1)
    for mods in (None, "audio,image", "text"):
        f = folder.search_vectors(q, 7, mods, mode, ["text"])
        s = store.search_vectors(q, 7, mods, mode, ["text"])
        assert_same(f, s)
        assert f[2] == s[2] == mode


def test_space_search_and_pair_expansion_match(tiny: dict[str, Path]):
    folder, store = Space.load(tiny["run"]), Space.load(tiny["run"], tiny["uri"])
    for kwargs in ({"text": "a dog barking", "k": 6}, {"text": "rain", "via_pairs": 3},
                   {"text": "bell", "modality": "audio", "balance": "balanced"}):
        f, s = folder.search(**kwargs), store.search(**kwargs)
        assert [r["id"] for r in f["results"]] == [r["id"] for r in s["results"]]
        assert [r.get("path") or r.get("text") for r in f["results"]] == \
            [r.get("path") or r.get("text") for r in s["results"]]
        np.testing.assert_allclose([r["score"] for r in f["results"]],
                                   [r["score"] for r in s["results"]], atol=1e-5)
        assert f["mode"] == s["mode"]


def test_the_service_works_the_same_on_a_store(tiny: dict[str, Path]):
    """The HTTP service over a Milvus store answers searches and similar-item searches like the
    same run's faiss folder (the store's own vectors feed /similar)."""
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    from fastapi.testclient import TestClient

    from unibind.serve.app import create_app

    answers = []
    for index in (None, tiny["uri"]):
        with TestClient(create_app(Space.load(tiny["run"], index)),
                        base_url="http://127.0.0.1") as client:  # a loopback Host
            found = client.post("/api/search", json={"text": "a dog barking", "k": 6})
            assert found.status_code == 200, found.text
            first = found.json()["results"][0]["id"]
            similar = client.post(f"/api/items/{first}/similar", json={"k": 5})
            assert similar.status_code == 200, similar.text
            answers.append([found.json(), similar.json()])
    for f, s in zip(*answers):
        assert f["modality"] == s["modality"] and f["mode"] == s["mode"]
        assert [r["id"] for r in f["results"]] == [r["id"] for r in s["results"]]
        np.testing.assert_allclose([r["score"] for r in f["results"]],
                                   [r["score"] for r in s["results"]], atol=1e-5)


def test_store_of_another_run_is_refused(tiny: dict[str, Path], tmp_path: Path):
    other = synthetic_run(tmp_path)
    with pytest.raises(IndexMismatch, match="head digest"):
        Space.load(other, tiny["uri"])


def test_index_add_equals_faiss_add(tiny: dict[str, Path], tmp_path: Path):
    uri = f"milvus://{tmp_path}/grow.db"
    build_index(tiny["run"], out=tmp_path / "grown", factory="Flat")
    build_index(tiny["run"], store=uri)
    cache = tiny["root"] / "cache"
    f = add_items(tiny["run"], tiny["full"], index_path=tmp_path / "grown", cache_dir=cache)
    s = add_items(tiny["run"], tiny["full"], index_path=uri, cache_dir=cache)
    assert s["added"] == f["added"] == 12 and s["count"] == f["count"]
    assert add_items(tiny["run"], tiny["full"], index_path=uri, cache_dir=cache)["added"] == 0
    run = Run.load(tiny["run"])
    folder, store = open_index(run, tmp_path / "grown"), open_index(run, uri)
    assert store.items["id"].tolist() == folder.items["id"].tolist()
    q = unit_queries(3, run.embed_dim, seed=2)
    for m in folder.modalities:
        assert_same(folder.search(q, 40, [m])[m], store.search(q, 40, [m])[m])


def test_cli_index_and_search_on_a_store(tiny: dict[str, Path], tmp_path: Path):
    runner = CliRunner()
    uri = f"milvus://{tmp_path}/cli.db"
    res = runner.invoke(app, ["index", str(tiny["run"]), "--store", uri, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["index"] == uri and summary["count"] == 24
    assert {p["factory"] for p in summary["parts"].values()} == {"milvus:FLAT"}
    outs = []
    for where in ([], ["--index", uri]):
        res = runner.invoke(app, ["search", str(tiny["run"]), "--text", "a church bell",
                                  "--k", "4", "--json", *where])
        assert res.exit_code == 0, res.output
        outs.append(json.loads(res.stdout.strip().splitlines()[-1])["results"])
    assert [r["id"] for r in outs[0]] == [r["id"] for r in outs[1]]
    res = runner.invoke(app, ["search", str(tiny["run"]), "--text", "x", "--store",
                              f"milvus://{tmp_path}/absent.db"])
    assert res.exit_code == 2 and "no Milvus Lite store" in res.output
    res = runner.invoke(app, ["index", "add", str(tiny["run"]), str(tiny["full"]), "--store",
                              uri, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["added"] == 12


@pytest.mark.parametrize("uri, message", [
    ("ftp://host/x", "unknown store"),
    ("milvus://runs/demo.sqlite", "ending in .db"),
    ("milvus://x.db?collection=9bad", "collection name"),
    ("milvus://x.db?colection=a", "unknown option"),
    ("http://:19530", "no host"),
    ("http://host:port", "bad port"),
])
def test_malformed_uris_are_clear_errors(uri: str, message: str):
    with pytest.raises(StoreError, match=message):
        parse_store_uri(uri)


def test_unusable_stores_are_clear_errors(tiny: dict[str, Path], tmp_path: Path):
    from unibind.errors import UnibindError

    with pytest.raises(StoreError, match="pass store URIs as strings"):
        Space.load(tiny["run"], Path(tiny["uri"]))

    with pytest.raises(StoreError, match="no Milvus Lite store"):
        open_store(f"milvus://{tmp_path}/absent.db")
    with pytest.raises(StoreError, match="cannot reach Milvus server"):
        open_store("http://127.0.0.1:9")
    with pytest.raises(StoreError, match="no collection 'other'") as info:
        open_store(tiny["uri"] + "?collection=other")
    assert isinstance(info.value, UnibindError) and isinstance(info.value, ValueError)
    with pytest.raises(StoreError, match="unknown Milvus index type"):
        build_index(tiny["run"], store=f"milvus://{tmp_path}/t.db", factory="PQ8x4fs")


def test_too_long_metadata_names_the_item(tmp_path: Path):
    from unibind.features.folder import load_features, save_features

    run_path = synthetic_run(tmp_path)
    feats = load_features(tmp_path / "features")
    items = feats.items.copy()
    items.loc[3, "text"] = "x" * 70_000
    save_features(tmp_path / "features", items, feats.arrays, feats.meta)
    uri = f"milvus://{tmp_path}/long.db"
    with pytest.raises(StoreError, match=f"item {items.loc[3, 'id']!r}: its text has 70000"):
        build_index(run_path, store=uri)


HOLDER = """
import sys
from pymilvus import MilvusClient
c = MilvusClient(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def test_lite_file_held_by_another_process(tmp_path: Path):
    run_path = synthetic_run(tmp_path)
    path = tmp_path / "held.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="open in another process"):
            build_index(run_path, store=f"milvus://{path}")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    build_index(run_path, store=f"milvus://{path}")  # the lock went with the process
    assert len(open_store(f"milvus://{path}")) == 135


@pytest.fixture
def lite_server(tmp_path: Path):
    """``python -m milvus_lite server`` on a free 127.0.0.1 port: a Milvus gRPC server (the
    http:// path), stopped after the test."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir",
                             str(tmp_path / "server.db"), "--host", "127.0.0.1", "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the Milvus Lite server did not start within 60 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        from unibind.search.stores.milvus import close_clients

        close_clients()
        proc.terminate()
        proc.wait(timeout=30)


def test_server_store_shared_by_processes(tiny: dict[str, Path], lite_server: str):
    uri = lite_server + "?collection=served"
    build_index(tiny["run"], store=uri)
    query = ["search", str(tiny["run"]), "--text", "a church bell", "--k", "5", "--json"]
    # another process searches the server while this one holds a client to it
    other = subprocess.run([sys.executable, "-c", "from unibind.cli import main; main()",
                            *query, "--index", uri],
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr[-2000:]
    here = Space.load(tiny["run"], uri).search(text="a church bell", k=5)
    faiss_side = Space.load(tiny["run"]).search(text="a church bell", k=5)
    got = json.loads(other.stdout.strip().splitlines()[-1])["results"]
    assert [r["id"] for r in got] == [r["id"] for r in here["results"]] == \
        [r["id"] for r in faiss_side["results"]]


def test_store_search_from_threads(tiny: dict[str, Path]):
    from concurrent.futures import ThreadPoolExecutor

    space = Space.load(tiny["run"], tiny["uri"])
    q = unit_queries(8, space.run.embed_dim, seed=3)
    want = [space.search_vectors(q[i:i + 1], 5, None, "balanced")[1] for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: space.search_vectors(q[i:i + 1], 5, None, "balanced")[1],
                            list(range(8)) * 3))
    for i, rows in enumerate(got):
        np.testing.assert_array_equal(rows, want[i % 8])
