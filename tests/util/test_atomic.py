"""A folder swap killed at any step leaves the old or the new folder; nothing stale."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from unibind.data.manifest import read_manifest, write_manifest
from unibind.run.folder import Run, RunError
from unibind.util import atomic
from unibind.util.atomic import atomic_folder, recover_folder

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from unibind.util import atomic
    target, step, exchange = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    atomic.USE_EXCHANGE = exchange
    def fault(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)
    atomic.FAULT = fault
    with atomic.atomic_folder(target) as tmp:
        (tmp / "data.txt").write_text("new")
        if step == "writing":
            os.kill(os.getpid(), signal.SIGKILL)
""")


def _content(path: Path) -> str | None:
    f = path / "data.txt"
    return f.read_text() if f.is_file() else None


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("step", ["writing", "staged", "moved-old", "swapped", "none"])
def test_killed_swap_leaves_old_or_new(tmp_path: Path, step: str, exchange: bool) -> None:
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "data.txt").write_text("old")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(target), step, str(int(exchange))],
                          capture_output=True, text=True, timeout=60)
    killed = step != "none" and not (exchange and step == "moved-old")
    assert proc.returncode == (-9 if killed else 0), proc.stderr
    if exchange:  # one atomic exchange: the name never goes missing, even before recovery
        assert _content(target) in ("old", "new")
    recover_folder(target)  # what every loader does on open
    expected = "new" if step in ("swapped", "none") or (exchange and step == "moved-old") \
        else "old"
    assert _content(target) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left behind


def test_loaders_recover(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "run.json").write_text("{}")
    aside = tmp_path / ".run.old-999999999-x"
    target.rename(aside)  # as a kill between the two renames leaves it (pid long gone)
    with pytest.raises(RunError, match="is not a run folder"):  # run.json alone is no run
        Run.load(target)
    assert (target / "run.json").is_file() and not aside.exists()


def test_run_format_checked(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"format": 99}')
    (tmp_path / "heads.safetensors").write_bytes(b"")
    with pytest.raises(RunError, match="run format 99 != 1"):
        Run.load(tmp_path)


def test_write_manifest_uses_the_atomic_helper(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    synced = []
    real = atomic.os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    for name in ("m.csv", "m.jsonl", "m.parquet"):
        rows = pd.DataFrame([{"id": "a", "modality": "text", "label": "x", "text": "héllo"}])
        write_manifest(rows, tmp_path / name)
        assert read_manifest(tmp_path / name).table["text"].tolist() == ["héllo"]
    assert len(synced) >= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.jsonl", "m.parquet"]


def test_artifacts_follow_the_users_umask(tmp_path: Path):
    """A real process with ``umask 022`` writes files 0644 and folders 0755 (not 0600/0700)."""
    import os

    code = ("import sys; from unibind.util.atomic import atomic_file, atomic_folder\n"
            "with atomic_file(sys.argv[1] + '/f.json', 'w') as fh: fh.write('{}')\n"
            "with atomic_folder(sys.argv[1] + '/run') as d: (d / 'x').write_text('x')\n")
    src = Path(__file__).resolve().parents[2] / "src"
    subprocess.run(["sh", "-c", f'umask 022 && exec "{sys.executable}" -c "$0" "$1"', code,
                    str(tmp_path)], check=True, env={**os.environ, "PYTHONPATH": str(src)})
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "x").stat().st_mode & 0o777 == 0o644
