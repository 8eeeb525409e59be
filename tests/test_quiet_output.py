"""At the default level the CLI shows unibind's own messages only, whole lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fixtures.media import make_media_folder

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING|ERROR) unibind[.\w]*: ")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "OMP_WAIT_POLICY")}
    code = "import sys; from unibind.cli import main; sys.argv = ['unibind', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _check_lines(stderr: str) -> list[str]:
    """Log records, each on a line of its own (bars are redrawn with \\r, so split on it)."""
    records = []
    for line in stderr.split("\n"):
        for i, piece in enumerate(line.split("\r")):
            if " INFO " in piece or " WARNING " in piece or "INFO:" in piece:
                assert i == 0 and STAMP.match(piece), f"torn or foreign log line: {line!r}"
                records.append(piece)
    return records


def test_cli_output_is_quiet_and_whole(tmp_path: Path) -> None:
    root = make_media_folder(tmp_path / "d", per_label=2)
    from unibind.data.folder import build_folder_manifest

    manifest = build_folder_manifest(root)
    res = _cli("extract", str(manifest), "--out", str(tmp_path / "f"), "--profile", "tiny",
               "--cache-dir", str(tmp_path / "c"), "--batch-size", "2")
    assert res.returncode == 0, res.stderr
    records = _check_lines(res.stderr)
    assert any("6 to compute" in r for r in records)
    for noise in ("Loading weights", "Writing model shards", "faiss.loader", "Loading faiss"):
        assert noise not in res.stderr
    res = _cli("train", str(tmp_path / "f"), "--out", str(tmp_path / "run"), "--epochs", "2")
    assert res.returncode == 0, res.stderr
    res = _cli("index", str(tmp_path / "run"), "--factory", "HNSW8")
    assert res.returncode == 0, res.stderr
    assert len(_check_lines(res.stderr)) == 3  # "indexed N <modality> item(s)", nothing else
    assert "faiss.loader" not in res.stderr and "Loading faiss" not in res.stderr
