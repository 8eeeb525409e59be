"""Image cleaning on generated files and the bing-image-downloader boundary (no network)."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures import data_builders as fx
from unibind.cli import app
from unibind.data.images import (
    WebExtraMissing,
    bing_fetch,
    build_images,
    folder_candidates,
    natural_key,
    read_labels,
)
from unibind.data.manifest import read_manifest


@pytest.fixture()
def messy(tmp_path):
    """SRC/<label>/ with good, corrupt, truncated, duplicate and tiny images."""
    src = tmp_path / "src"
    fx.save_image(src / "cat" / "a.png", (80, 70), seed=1)
    fx.save_image(src / "cat" / "b.jpg", (90, 64), seed=2, fmt="JPEG")
    (src / "cat" / "c.jpg").write_bytes(b"\xff\xd8\xff garbage, not a jpeg")
    shutil.copy(src / "cat" / "a.png", src / "cat" / "d.png")  # exact duplicate
    fx.save_image(src / "cat" / "e.png", (20, 200), seed=3)  # tiny (short side 20)
    good = fx.save_image(src / "dog" / "x.png", (100, 100), seed=4)
    (src / "dog" / "y.png").write_bytes(good.read_bytes()[:200])  # truncated
    shutil.copy(src / "cat" / "b.jpg", src / "dog" / "z.jpg")  # duplicate across classes
    fx.save_image(src / "dog" / "nested" / "w.png", (64, 64), seed=5)
    (src / "dog" / "notes.txt").write_text("ignored")
    return src


def test_clean_from_folder(messy, tmp_path):
    summary = build_images(tmp_path / "out", per_class=None, from_folder=messy, min_side=32)
    reasons = {d["id"]: d["reason"] for d in summary["dropped"]}
    assert reasons["cat/c.jpg"].startswith("undecodable")
    assert reasons["cat/d.png"] == "duplicate of cat/a.png"
    assert reasons["cat/e.png"].startswith("too small: 20x200")
    assert reasons["dog/y.png"].startswith("undecodable")
    assert reasons["dog/z.jpg"] == "duplicate of cat/b.jpg"
    assert len(reasons) == 5
    m = read_manifest(summary["out"])
    assert sorted(m.table["id"]) == ["image/cat/a.png", "image/cat/b.jpg",
                                     "image/dog/nested__w.png", "image/dog/x.png"]
    assert all(m.resolve(p).is_relative_to(tmp_path / "out") for p in m.table["path"])
    assert (m.table["group"] == m.table["label"] + "/" + m.table["path"].map(
        lambda p: Path(p).stem)).all()
    # per-class cap keeps the first good files in natural order; min side applies
    capped = build_images(tmp_path / "cap", per_class=1, from_folder=messy, min_side=64)
    table = read_manifest(capped["out"]).table
    assert sorted(table["id"]) == ["image/cat/a.png", "image/dog/nested__w.png"]
    assert capped["short"] == {}
    only = build_images(tmp_path / "one", ["dog"], per_class=5, from_folder=messy, min_side=32)
    assert only["short"] == {"dog": 3} and only["labels"] == 1  # z.jpg no longer a duplicate


def test_natural_order_and_labels(tmp_path):
    assert sorted(["Image_10.jpg", "Image_2.jpg", "Image_1.jpg"], key=natural_key) == [
        "Image_1.jpg", "Image_2.jpg", "Image_10.jpg"]
    (tmp_path / "labels.txt").write_text("dog\n# comment\n\nchirping_birds  # birds\ndog\n")
    assert read_labels(tmp_path / "labels.txt") == ["dog", "chirping_birds"]
    fx.save_image(tmp_path / "s" / "b" / "Image_10.png", seed=1)
    fx.save_image(tmp_path / "s" / "b" / "Image_9.png", seed=2)
    names = [c.path.name for c in folder_candidates(tmp_path / "s")]
    assert names == ["Image_9.png", "Image_10.png"]


def _fake_bing(calls: list, bad_every: int = 0):
    """A stand-in for bing_image_downloader.downloader with the real package's call signature,
    folder layout (OUTPUT/<query>/Image_N.ext) and stdout log lines."""

    def download(query, limit=100, output_dir="dataset", adult_filter_off=True,
                 force_replace=False, timeout=60, filter="", verbose=True):
        calls.append((query, limit, adult_filter_off))
        folder = Path(output_dir) / query
        folder.mkdir(parents=True, exist_ok=True)
        print(f"[%] Downloading Images to {folder}")
        n = 0
        for i in range(limit + 1):
            url = f"https://img.example/{query.replace(' ', '_')}/{i}.png"
            print(f"[%] Downloading Image #{n + 1} from {url}")
            if i == 1:  # a failed link: the package does not count it
                print(f"[!] Issue getting: {url}\n[!] Error:: HTTP Error 403")
                continue
            n += 1
            fx.save_image(folder / f"Image_{n}.png", (70, 70), seed=100 * len(calls) + i)
            print("[%] File Downloaded!\n")
            if n == limit:
                break
        print(f"[%] Done. Downloaded {n} images.")

    downloader = types.ModuleType("bing_image_downloader.downloader")
    downloader.download = download
    package = types.ModuleType("bing_image_downloader")
    package.downloader = downloader
    return package, downloader


def test_web_boundary_records_urls(tmp_path, monkeypatch, capsys):
    calls: list = []
    package, downloader = _fake_bing(calls)
    monkeypatch.setitem(sys.modules, "bing_image_downloader", package)
    monkeypatch.setitem(sys.modules, "bing_image_downloader.downloader", downloader)
    summary = build_images(tmp_path / "out", ["dog", "chirping_birds"], per_class=2, extra=1)
    assert capsys.readouterr().out == ""  # the package's prints never reach stdout
    assert calls == [("dog", 3, False), ("chirping birds", 3, False)]
    table = read_manifest(summary["out"]).table
    assert len(table) == 4 and summary["with_url"] == 4
    first = table[table["id"] == "image/dog/Image_1.png"].iloc[0]
    second = table[table["id"] == "image/dog/Image_2.png"].iloc[0]
    assert first.source_url == "https://img.example/dog/0.png"
    assert second.source_url == "https://img.example/dog/2.png"  # link 1 failed
    # a re-run does not fetch again
    build_images(tmp_path / "out", ["dog", "chirping_birds"], per_class=2, extra=1)
    assert len(calls) == 2


def test_missing_web_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bing_image_downloader", None)
    with pytest.raises(WebExtraMissing, match=r"pip install 'unibind\[web\]'"):
        bing_fetch("dog", 1, tmp_path)
    (tmp_path / "labels.txt").write_text("dog\n")
    result = CliRunner().invoke(app, ["data", "images", "--labels", str(tmp_path / "labels.txt"),
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "unibind[web]" in result.output


def test_cli_from_folder(messy, tmp_path):
    result = CliRunner().invoke(app, ["data", "images", "--from-folder", str(messy), "--out",
                                      str(tmp_path / "o"), "--min-side", "32", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # exactly one JSON object
    assert summary["items"] == 4 and len(summary["dropped"]) == 5
