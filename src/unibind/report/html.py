"""One self-contained HTML page about a run: data, training curve, 3x3 table, modality shares
(``eval.tables``), the 2-D plots and example queries with their top results (images inlined
as thumbnails)."""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from pathlib import Path
from typing import Any

from unibind.eval import tables
from unibind.modalities import MODALITIES, get_modality
from unibind.report.plots import plot_files
from unibind.run.folder import Run
from unibind.util.atomic import atomic_file
from unibind.util.jsonio import read_json, write_json_atomic

log = logging.getLogger(__name__)

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 12px;
color:#222}img{max-width:100%}table{border-collapse:collapse;margin:.5em 0;display:block;
max-width:100%;overflow-x:auto}td.l{overflow-wrap:anywhere}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}caption{text-align:left}.wide{overflow-x:auto}h3{overflow-wrap:anywhere}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:8px}
.ex{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.res{min-width:0;overflow:hidden;overflow-wrap:anywhere;border:1px solid #ddd;border-radius:6px;
padding:6px;font-size:12px}.res img{display:block;max-width:100%;max-height:110px;
margin:0 auto 4px}.res audio{display:block;width:100%;margin-bottom:4px}
code{background:#f6f6f6;overflow-wrap:anywhere}"""
RELEVANCE = {"label": "class-level relevance (same label)",
             "group": "group-level relevance (files sharing a stem)"}


def _png_uri(path_or_bytes: Path | bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _thumb(path: str, size: int = 140) -> str | None:
    try:
        from unibind.media.decode import load_image

        img = load_image(path)
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return _png_uri(buf.getvalue())
    except Exception as exc:  # a missing thumbnail must not sink the report
        log.debug("no thumbnail for %s: %s", path, exc)
        return None


def curve_png(curve: list[dict[str, Any]]) -> bytes | None:
    """Training loss and validation mAP@10 per epoch, as PNG bytes."""
    if not curve:
        return None
    from matplotlib.figure import Figure  # no pyplot, no global backend change

    epochs = [c.get("epoch", i + 1) for i, c in enumerate(curve)]
    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.subplots()
    ax.plot(epochs, [c.get("loss") for c in curve], color="#1f77b4", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    val = [c.get("val_mAP@10") for c in curve]
    if any(v is not None for v in val):
        ax2 = ax.twinx()
        ax2.plot(epochs, val, color="#d62728", label="val mAP@10")
        ax2.set_ylabel("val mAP@10")
        ax2.legend(loc="upper right", fontsize=8, frameon=False)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def metric_table(metrics: dict[str, Any]) -> str:
    """The 3x3 query -> target grid (R@10) and every pair's metrics."""
    grid = tables.pair_grid(metrics)
    relevance = RELEVANCE.get(str(metrics.get("relevance", "label")),
                              f"{metrics.get('relevance')} relevance")
    grid.title = f"R@10, query (row) \u2192 target (column), {relevance}"
    out = (f"<div class=wide>{grid.html()}</div>"
           f"<div class=wide>{tables.pairs_table(metrics).html()}</div>")
    if metrics.get("instance"):  # the thing itself: the query's own picture, caption, sound
        out += f"<div class=wide>{tables.pair_grid(metrics, 'R@1', level='instance').html()}</div>"
    return out


def shares_table(metrics: dict[str, Any]) -> str:
    """The modality-shares table of a mixed search, as HTML."""
    if not metrics.get("mixed"):
        return "<p>(no mixed-search measurements)</p>"
    rec = metrics.get("search", {})
    shares = tables.shares_table(metrics)
    shares.title = ""  # the section heading says it
    return (shares.html()
            + f"<p>Recommended mode: <code>{html.escape(str(rec.get('mode')))}</code> "
              f"(centred: {rec.get('center')}).</p>")


def examples_html(examples: list[dict[str, Any]]) -> str:
    """Example queries and their top results, as HTML cards with previews."""
    blocks = []
    for ex in examples:
        query = "; ".join(f"{m}: {', '.join(v)}" for m, v in ex.get("query", {}).items())
        cards = []
        for r in ex.get("results", []):
            body = ""
            preview = get_modality(r["modality"]).preview if r["modality"] in MODALITIES else ""
            if preview == "image" and (uri := _thumb(r.get("path", ""))):
                body = f"<img src='{uri}'>"
            elif preview == "audio":
                body = f"<audio controls preload=none src='file://{html.escape(r['path'])}'></audio>"
            what = r.get("text") or Path(r.get("path", "")).name
            cards.append(f"<div class=res>{body}<b>{r['rank']}.</b> {r['modality']} "
                         f"<i>{html.escape(str(r['label']))}</i> {r['score']:.3f}<br>"
                         f"{html.escape(str(what))}</div>")
        blocks.append(f"<h3>{html.escape(query)} &rarr; {', '.join(ex.get('modality', []))} "
                      f"(mode {ex.get('mode')})</h3><div class=ex>{''.join(cards)}</div>")
    return "".join(blocks) or "<p>(no example queries)</p>"


def dataset_html(run: Run) -> str:
    """The dataset summary (items per modality and split), as HTML."""
    rows = []
    try:
        feats = run.load_features()
    except (OSError, ValueError) as exc:
        log.warning("features unavailable for the report: %s", exc)
        feats = None
    if feats is not None:
        items = feats.items
        for m in feats.modalities:
            enc = feats.meta.get("encoders", {}).get(m, {})
            src = enc.get("spec", {}).get("source", enc.get("name", ""))
            rows.append(f"<tr><td class=l>{m}</td><td>{int((items['modality'] == m).sum())}</td>"
                        f"<td>{enc.get('dim', '')}</td><td class=l>{html.escape(str(src))}</td>"
                        "</tr>")
        labels = items["label"].astype(str).str.strip()
        n = labels[labels != ""].nunique()
        groups = items["group"].astype(str) if "group" in items else None
        paired = int((groups[groups != ""].value_counts() > 1).sum()) if groups is not None \
            else 0
        n_labels = (f"{n} {'class' if n == 1 else 'classes'}" if n else
                    f"no labels; {paired} group(s) of files sharing a stem" if paired else
                    "no labels and no groups")
    else:
        n_labels = "? classes"
    split = run.info.get("split", {}).get("items", {})
    return ("<table><tr><th class=l>modality</th><th>items</th><th>dim</th>"
            f"<th class=l>encoder</th></tr>{''.join(rows)}</table>"
            f"<p>{n_labels}; split (items): {html.escape(str(split))}; preset "
            f"<code>{run.info.get('preset')}</code>, best epoch {run.info.get('best_epoch')}.</p>")


def build_report(run_path: str | os.PathLike, out: str | os.PathLike | None = None,
                 examples: list[dict[str, Any]] | None = None,
                 plots: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``RUN/report.html`` (one file, images inlined). ``examples``: search results
    (``Space.search`` dicts); default: ``RUN/examples.json`` when present, else
    ``report.examples.default_examples`` (captions, labels, or a few items as queries)."""
    run = Run.load(run_path)
    out = Path(out) if out else run.path / "report.html"
    metrics_file = run.path / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    if examples is None and (run.path / "examples.json").is_file():
        examples = read_json(run.path / "examples.json")
    if examples is None:
        from unibind.report.examples import default_examples

        examples = default_examples(run.path)
    if plots is None:
        plots = plot_files(run.path / "plots")
    parts = [f"<!doctype html><meta charset=utf-8><title>unibind report: {run.path.name}"
             f"</title><style>{STYLE}</style><h1>unibind run <code>{html.escape(str(run.path))}"
             "</code></h1>", "<h2>Dataset</h2>", dataset_html(run), "<h2>Training curve</h2>"]
    png = curve_png(run.info.get("curve", []))
    parts.append(f"<img src='{_png_uri(png)}'>" if png else "<p>(no training curve)</p>")
    parts.append(f"<h2>Held-out metrics ({metrics.get('split', 'test')} split)</h2>")
    parts.append(metric_table(metrics) if metrics else
                 "<p>(no metrics.json: run <code>unibind evaluate RUN</code>)</p>")
    shown = [p for p in plots.values() if p and Path(p).is_file()]
    methods = sorted({Path(p).name.split("_by_")[0].upper() for p in shown})
    parts += ["<h2>Modality shares in a mixed top-10</h2>", shares_table(metrics),
              f"<h2>The space ({' / '.join(methods) or 'a 2-D map'})</h2>"]
    parts += ["<div class=plots>" + "".join(f"<img class=plot src='{_png_uri(Path(p))}'>"
                                            for p in shown) + "</div>"] if shown else [
        "<p>(no plots: run <code>unibind plot RUN</code>)</p>"]
    parts += ["<h2>Example queries</h2>", examples_html(examples or [])]
    with atomic_file(out, "w") as fh:
        fh.write("\n".join(parts))
    return {"report": str(out), "examples": len(examples or []), "plots": len(shown),
            "metrics": bool(metrics)}


def save_examples(run_path: str | os.PathLike, examples: list[dict[str, Any]]) -> Path:
    """Write the report's example queries to ``RUN/examples.json``; its path."""
    path = Path(run_path) / "examples.json"
    write_json_atomic(path, examples)
    return path
