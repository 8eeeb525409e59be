"""The report in Chromium at a desktop and a phone width: no picture, player or card overlaps
another (element boxes do not intersect) and each stays inside its card."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.fixtures.browser import ARGS, CHROMIUM, needs_chromium, sync_playwright
from tests.fixtures.runs import clustered_run
from unibind.report.html import build_report, save_examples

pytestmark = needs_chromium

BOXES = """() => [...document.querySelectorAll('.res')].map((card, i) => ({
  card: i, box: card.getBoundingClientRect().toJSON(),
  parts: [...card.querySelectorAll('img, audio')].map(e => e.getBoundingClientRect().toJSON())
}))"""


def _overlap(a: dict, b: dict) -> bool:
    return (min(a["right"], b["right"]) - max(a["left"], b["left"]) > 0.5 and
            min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 0.5)


def _inside(inner: dict, outer: dict) -> bool:
    return (inner["left"] >= outer["left"] - 0.5 and inner["right"] <= outer["right"] + 0.5 and
            inner["top"] >= outer["top"] - 0.5 and inner["bottom"] <= outer["bottom"] + 0.5)


def _report(tmp_path: Path) -> Path:
    run = clustered_run(tmp_path)
    results = []
    for i in range(8):  # pictures (wide and tall), sounds and long names, alternating
        if i % 2:
            path = tmp_path / f"sound-with-a-rather-long-file-name-{i}.wav"
            sf.write(path, np.zeros(8000, np.float32), 8000)
            results.append({"rank": i + 1, "score": 0.9 - i / 20, "id": f"a{i}",
                            "modality": "audio", "label": "", "path": str(path)})
        else:
            path = tmp_path / f"p{i}.png"
            Image.new("RGB", (400, 120) if i % 4 else (90, 300), (30 * i, 90, 160)).save(path)
            results.append({"rank": i + 1, "score": 0.9 - i / 20, "id": f"i{i}",
                            "modality": "image", "label": "x" * 30, "path": str(path)})
    save_examples(run, [{"query": {"audio": ["/a/rather/long/path/" + "x" * 120 + ".wav"]},
                         "modality": ["image", "audio"],
                         "mode": "balanced", "results": results}] * 2)
    return Path(build_report(run)["report"])


@pytest.mark.parametrize("width", [1280, 420])
def test_report_elements_do_not_overlap(tmp_path: Path, width: int):
    report = _report(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            cards = page.evaluate(BOXES)
            doc_width = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert len(cards) == 16 and sum(len(c["parts"]) for c in cards) == 16
    assert doc_width <= width  # nothing pushes the page sideways
    for c in cards:
        for part in c["parts"]:
            assert _inside(part, c["box"]), (width, c["card"], part, c["box"])
    parts = [(c["card"], part) for c in cards for part in [c["box"], *c["parts"]]]
    for i, (ci, a) in enumerate(parts):
        for cj, b in parts[i + 1:]:
            if ci != cj:
                assert not _overlap(a, b), (width, ci, cj, a, b)
    assert math.isfinite(doc_width)
