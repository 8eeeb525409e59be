"""Report: one HTML file with the dataset, curve, 3x3 table, shares, plots and examples."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from tests.fixtures.runs import clustered_run
from unibind.cli import app
from unibind.report.html import build_report, save_examples
from unibind.report.plots import plot_run
from unibind.util.jsonio import write_json_atomic

PAIRS = {f"{q}->{t}": {"R@1": 0.5, "R@5": 0.75, "R@10": 0.9 if q != t else 0.1, "mAP@10": 0.6,
                       "MRR": 0.7, "queries": 4}
         for q in ("text", "image", "audio") for t in ("text", "image", "audio")}


def test_report_has_every_section(tmp_path: Path):
    run = clustered_run(tmp_path)
    info = json.loads((run / "run.json").read_text())
    info["curve"] = [{"epoch": i + 1, "loss": 3 - i, "val_mAP@10": 0.2 * i} for i in range(3)]
    write_json_atomic(run / "run.json", info)
    write_json_atomic(run / "metrics.json", {
        "split": "test", "n_items": {"text": 4, "image": 4, "audio": 4}, "pairs": PAIRS,
        "mixed": {"none": {"share@10": {"text": 0.8, "image": 0.1, "audio": 0.1},
                           "pool_share": {"text": 0.34, "image": 0.33, "audio": 0.33},
                           "R@10": 0.4}},
        "search": {"mode": "balanced", "center": False}})
    plot_run(run, method="pca")
    image = tmp_path / "thumb.png"
    from PIL import Image

    Image.new("RGB", (300, 200), (200, 30, 30)).save(image)
    save_examples(run, [{"query": {"text": ["a red square"]}, "modality": ["image", "text"],
                         "mode": "none", "results": [
                             {"rank": 1, "score": 0.91, "id": "i1", "modality": "image",
                              "label": "red", "path": str(image)},
                             {"rank": 2, "score": 0.52, "id": "t1", "modality": "text",
                              "label": "red", "text": "a red thing"}]}])
    summary = build_report(run)
    page = Path(summary["report"]).read_text()
    assert summary == {"report": str(run / "report.html"), "examples": 1, "plots": 2,
                       "metrics": True}
    for needle in ("Dataset", "Training curve", "query \\ target", "share text", "The space (PCA)",
                   "a red square", "a red thing", "balanced"):
        assert needle in page, needle
    assert ("<tr><th class=l>text</th><td>0.100 (4)</td><td>0.900 (4)</td><td>0.900 (4)</td></tr>"
            in page)  # a row of the 3x3 grid: R@10 of text -> text, image, audio
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(pngs) >= 4  # curve, two plots, one thumbnail
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_report_cli_without_metrics(tmp_path: Path):
    run = clustered_run(tmp_path)
    res = CliRunner().invoke(app, ["report", str(run), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["metrics"] is False
    assert "unibind evaluate" in Path(out["report"]).read_text()


def test_default_example_queries(tmp_path: Path):
    import pandas as pd

    from unibind.report.examples import pick_example_queries

    def table(rows):
        return pd.DataFrame(rows, columns=["id", "modality", "label", "path", "text"])

    captions = table([("t1", "text", "", "", "a red boat"), ("t2", "text", "", "", "a cat"),
                      ("i1", "image", "", "i1.png", "")])
    assert pick_example_queries(captions, ["text", "image"], tmp_path, 2) == [
        {"text": ["a red boat"]}, {"text": ["a cat"]}]
    labelled = table([("i1", "image", "boat", "i1.png", ""), ("i2", "image", "cat", "i2.png", "")])
    assert pick_example_queries(labelled, ["text", "image"], tmp_path) == [
        {"text": ["boat"]}, {"text": ["cat"]}]
    bare = table([(f"i{i}", "image", "", f"i{i}.png", "") for i in range(5)]
                 + [("a1", "audio", "", "a1.wav", "")])
    got = pick_example_queries(bare, ["image", "audio"], tmp_path, 3)
    assert got == [{"image": [str(tmp_path / "i0.png")]}, {"image": [str(tmp_path / "i4.png")]},
                   {"audio": [str(tmp_path / "a1.wav")]}]
