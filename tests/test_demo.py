"""The demo pipeline end to end on a small generated folder dataset with the tiny profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.media import make_media_folder
from unibind.cli import app
from unibind.demo import DemoError, demo_text, run_demo


def test_demo_on_a_folder(tmp_path: Path):
    data = make_media_folder(tmp_path / "data", per_label=6, seconds=1.0)
    summary = run_demo(data=data, out=tmp_path / "out", profile="tiny", plot_method="pca",
                       epochs=3, k=4)
    run = tmp_path / "out" / "run"
    for name in ("run.json", "metrics.json", "index/index.json", "examples.json",
                 "report.html", "plots/pca_by_class.png", "plots/pca_by_modality.png"):
        assert (run / name).is_file(), name
    metrics = summary["metrics"]
    assert len(metrics["pairs"]) == 9 and metrics["split"] == "test"
    assert summary["index"]["count"] == 54
    assert len(summary["examples"]) == 4  # a sentence, a picture, a sound; the sentence via pairs
    kinds = [next(iter(ex["query"])) for ex in summary["examples"]]
    assert kinds == ["text", "image", "audio", "text"]
    assert summary["examples"][3]["mode"].endswith("+pairs")
    assert summary["examples"][3]["query"] == summary["examples"][0]["query"]
    for ex in summary["examples"]:
        assert len(ex["results"]) == 4
        assert not set(ex["query"]) & {r["modality"] for r in ex["results"]}  # cross-modal
    text = demo_text(summary)
    for needle in ("R@10 query (row) -> target (column)", "modality shares", "balanced",
                   "report:", "query (audio:", "search page: unibind serve"):
        assert needle in text, needle
    page = Path(summary["report"]).read_text()
    assert "Example queries" in page and "data:image/png;base64" in page


def test_demo_falls_back_with_a_clear_message(tmp_path: Path, monkeypatch):
    from unibind.data import tuxpaint

    def no_package(**_):
        raise tuxpaint.TuxpaintError("`apt-get download tuxpaint-stamps-default` failed")

    monkeypatch.setattr(tuxpaint, "build_tuxpaint", no_package)
    with pytest.raises(DemoError, match="Tux Paint.*unibind demo --data DIR"):
        run_demo(out=tmp_path / "out", profile="tiny")
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "o"), "--profile", "tiny"])
    assert res.exit_code == 2 and "--data DIR" in res.output
    res = CliRunner().invoke(app, ["demo", "--data", str(tmp_path / "none"), "--profile", "tiny",
                                   "--json"])
    assert res.exit_code == 2 and "none" in res.output
    assert not res.stdout.strip().startswith("{")  # no half summary on failure
