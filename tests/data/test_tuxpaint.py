"""Tux Paint builder: triples from a fake package tree, speech excluded, .deb unpacking, and a
clear message when the package cannot be downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fixtures.media import write_image, write_tone
from unibind.cli import app
from unibind.data import tuxpaint
from unibind.data.tuxpaint import STAMPS, TuxpaintError, build_tuxpaint

STAMP_SET = {  # relative stem -> (has sound, caption)
    "animals/mammals/dog": (True, "A dog.\nde.utf8=Ein Hund."),
    "animals/birds/owl": (True, "An owl."),
    "animals/birds/cartoon/tux": (False, "Tux."),
    "vehicles/car": (True, "A car."),
    "food/apple": (False, ""),
}


def fake_package(root: Path) -> Path:
    stamps = root / STAMPS
    for i, (stem, (sound, text)) in enumerate(STAMP_SET.items()):
        base = stamps / stem
        write_image(base.with_suffix(".png"), (40 * i, 100, 100))
        if text:
            base.with_suffix(".txt").write_text(text + "\n")
        if sound:
            write_tone(base.with_suffix(".ogg").with_name(base.name + ".wav"), 300.0, 0.3)
            os.replace(base.with_name(base.name + ".wav"), base.with_suffix(".wav"))
        # spoken descriptions and localised speech are never sounds
        write_tone(base.with_name(base.name + "_desc.wav"), 200.0, 0.2)
        write_tone(base.with_name(base.name + "_de.wav"), 200.0, 0.2)
    (stamps / "space").mkdir(parents=True)
    (stamps / "space" / "rocket.svg").write_text("<svg/>")  # SVG-only: skipped
    (stamps / "space" / "rocket.txt").write_text("A rocket.\n")
    return root


def test_scan_builds_triples_and_excludes_speech(tmp_path: Path):
    pkg = fake_package(tmp_path / "pkg")
    summary = build_tuxpaint(out=tmp_path / "out", source=pkg)
    table = pd.read_parquet(summary["out"])
    assert summary["triples"] == 3
    assert summary["modalities"] == {"image": 5, "text": 4, "audio": 3}
    audio = table[table["modality"] == "audio"]
    assert not audio["path"].str.contains("_desc|_de").any()
    dog = table[table["group"] == "tuxpaint/animals/mammals/dog"].set_index("modality")
    assert dog.loc["text", "text"] == "A dog."  # first line only (English)
    assert set(dog["label"]) == {"animals"}
    assert (tmp_path / "out" / dog.loc["image", "path"]).is_file()  # relative to the manifest
    assert "space" not in set(table["label"])
    level2 = build_tuxpaint(out=tmp_path / "o2", source=pkg, level=2, extras=False)
    t2 = pd.read_parquet(level2["out"])
    assert set(t2["label"]) == {"animals/mammals", "animals/birds", "vehicles"}
    assert level2["items"] == 9 and "GPL" in level2["licence"]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build a .deb")
def test_unpack_deb_with_dpkg_and_python_fallback(tmp_path: Path, monkeypatch):
    pkg = fake_package(tmp_path / "pkg")
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN" / "control").write_text(
        "Package: tuxpaint-stamps-default\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: test <t@example.org>\nDescription: fake stamps\n")
    deb = tmp_path / "tuxpaint-stamps-default_1.0_all.deb"
    subprocess.run(["dpkg-deb", "-Zxz", "-b", str(pkg), str(deb)], check=True,
                   capture_output=True)
    first = build_tuxpaint(out=tmp_path / "a", deb=deb)
    real_which = shutil.which
    monkeypatch.setattr(tuxpaint.shutil, "which",
                        lambda name: None if name == "dpkg-deb" else real_which(name))
    second = build_tuxpaint(out=tmp_path / "b", deb=deb)
    assert first["modalities"] == second["modalities"] == {"image": 5, "text": 4, "audio": 3}
    with pytest.raises(TuxpaintError, match="not a Debian package"):
        bad = tmp_path / "bad.deb"
        bad.write_bytes(b"nonsense")
        build_tuxpaint(out=tmp_path / "c", deb=bad)


def test_download_failure_says_what_to_do(tmp_path: Path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    apt = fake_bin / "apt-get"
    apt.write_text("#!/bin/sh\necho 'E: Unable to locate package tuxpaint-stamps-default' >&2\n"
                   "exit 100\n")
    apt.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(TuxpaintError, match="Unable to locate package.*apt-get update"):
        build_tuxpaint(out=tmp_path / "out")
    monkeypatch.setattr(tuxpaint.shutil, "which", lambda name: None)
    with pytest.raises(TuxpaintError, match="apt-get not found.*--deb"):
        build_tuxpaint(out=tmp_path / "out2")


def test_cli(tmp_path: Path):
    pkg = fake_package(tmp_path / "pkg")
    res = CliRunner().invoke(app, ["data", "tuxpaint", "--out", str(tmp_path / "o"), "--source",
                                   str(pkg), "--triples-only", "--json"])
    assert res.exit_code == 0, res.output
    assert '"triples": 3' in res.stdout
    res = CliRunner().invoke(app, ["data", "tuxpaint", "--out", str(tmp_path / "o"), "--source",
                                   str(tmp_path / "missing")])
    assert res.exit_code == 2 and "not found" in res.output
