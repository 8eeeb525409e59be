"""Issue 10.4: one feature cache shared by processes; compaction never breaks another's reads."""

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
