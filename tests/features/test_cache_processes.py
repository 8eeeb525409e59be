"""One feature cache shared by processes; compaction never breaks another's reads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from unibind.features.cache import FeatureCache

FP = "ab" + "0" * 62

READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from unibind.features.cache import FeatureCache
    root, flag = Path(sys.argv[1]), Path(sys.argv[2])
    cache = FeatureCache(root, sys.argv[3])        # shard map built now
    (flag / "ready").touch()
    while not (flag / "go").exists():
        time.sleep(0.02)
    got = cache.get_many([f"d{i}" for i in range(40)])  # the other process compacted meanwhile
    assert len(got) == 40, len(got)
    assert all(float(v[0]) == float(k[1:]) for k, v in got.items())
    cache.put_many({"late": got["d0"]})
    print("ok")
""")

COMPACTOR = textwrap.dedent("""
    import sys
    from pathlib import Path
    from unibind.features.cache import FeatureCache
    cache = FeatureCache(Path(sys.argv[1]), sys.argv[2])
    cache.compact(above=1)
    print(len(list(cache.folder.glob("*.safetensors"))))
""")


def test_compaction_in_one_process_does_not_break_another(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c", FP)
    for i in range(40):  # 40 one-vector shards
        cache.put_many({f"d{i}": np.full(4, i, np.float32)})
    flag = tmp_path / "flag"
    flag.mkdir()
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "c"), str(flag), FP],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (flag / "ready").exists():
        assert reader.poll() is None and time.monotonic() < deadline, reader.communicate()
        time.sleep(0.02)
    compactor = subprocess.run([sys.executable, "-c", COMPACTOR, str(tmp_path / "c"), FP],
                               capture_output=True, text=True, timeout=60)
    assert compactor.returncode == 0, compactor.stderr
    assert compactor.stdout.split() == ["1"]  # 40 shards merged into one, old ones deleted
    (flag / "go").touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out.split() == ["ok"]
    fresh = FeatureCache(tmp_path / "c", FP)
    assert len(fresh) == 41


def test_compaction_waits_for_readers(tmp_path: Path) -> None:
    """A reader holding the shared lock keeps the compactor (another process) waiting."""
    cache = FeatureCache(tmp_path / "c", FP)
    for i in range(3):
        cache.put_many({f"d{i}": np.full(4, i, np.float32)})
    with cache._lock(__import__("fcntl").LOCK_SH):
        compactor = subprocess.Popen([sys.executable, "-c", COMPACTOR, str(tmp_path / "c"), FP],
                                     stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert compactor.poll() is None  # blocked on the lock
        assert len(list(cache.folder.glob("*.safetensors"))) == 3
    assert compactor.communicate(timeout=60)[0].split() == ["1"]



EXTRACTOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import unibind.features.cache as cache_mod
    from unibind.features.extract import extract
    manifest, out, cache_dir, role, flag = sys.argv[1:6]
    flag = Path(flag)
    if role == "compactor":                       # compacts every shard once its run is done
        cache_mod.COMPACT_ABOVE = 1
        while not (flag / "ready").exists():
            time.sleep(0.02)
    else:                                         # reads its cache hits after the compaction
        original = cache_mod.FeatureCache.get_many
        def get_many(self, digests):
            (flag / "ready").touch()              # shard map built, hits not read yet
            deadline = time.time() + 120
            while not (flag / "go").exists() and time.time() < deadline:
                time.sleep(0.02)
            return original(self, digests)
        cache_mod.FeatureCache.get_many = get_many
    extract(manifest, out, profile="tiny", cache_dir=cache_dir, batch_size=1, workers=1,
            device="cpu")
    if role == "compactor":
        (flag / "go").touch()
    print("ok")
""")


def test_two_extractions_share_one_cache_while_one_compacts(tmp_path: Path):
    """End to end: two real `extract` processes over overlapping manifests and one
    cache. The reader builds its shard map over 30 cached items, then the other process computes
    its items and compacts every shard (deleting the ones the reader's map points at) before the
    reader reads its hits. Both succeed and every item matches a clean extraction."""
    import pandas as pd

    from unibind.data.manifest import write_manifest
    from unibind.features.extract import extract
    from unibind.features.folder import load_features

    def manifest(name: str, ids: range) -> str:
        table = pd.DataFrame({"id": [f"t{i}" for i in ids], "modality": "text",
                              "text": [f"sentence {i} about a barking dog" for i in ids],
                              "label": "x"})
        return str(write_manifest(table, tmp_path / f"{name}.jsonl"))

    cache, flag = tmp_path / "cache", tmp_path / "flags"
    flag.mkdir()
    extract(manifest("seed", range(30)), tmp_path / "seed", profile="tiny", cache_dir=cache,
            batch_size=1, device="cpu")
    seeded = set(cache.rglob("*.safetensors"))
    assert len(seeded) == 30
    procs = {role: subprocess.Popen(
        [sys.executable, "-c", EXTRACTOR, manifest(role, ids), str(tmp_path / role), str(cache),
         role, str(flag)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for role, ids in (("reader", range(10, 40)), ("compactor", range(25, 55)))}
    for role, p in procs.items():
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0 and out.strip().endswith("ok"), f"{role}: {err[-2000:]}"
    assert not seeded & set(cache.rglob("*.safetensors"))  # compacted under the reader's map

    extract(manifest("all", range(55)), tmp_path / "ref", profile="tiny",
            cache_dir=tmp_path / "clean-cache", device="cpu")
    want = dict(zip(*load_features(tmp_path / "ref").by_modality()["text"]))
    for role in procs:
        ids, vectors = load_features(tmp_path / role).by_modality()["text"]
        assert len(ids) == 30
        for item, vec in zip(ids, vectors):
            np.testing.assert_allclose(vec, want[item], atol=1e-5, err_msg=f"{role} {item}")
