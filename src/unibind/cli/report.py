"""``unibind report RUN``: one HTML page about a run."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, RUN_ARG, app, emit


@app.command("report")
def report(run: Path = RUN_ARG,
           out: Path = typer.Option(None, "--out", help="HTML file (default RUN/report.html)."),
           query: list[str] = typer.Option(None, "--query",
                                           help="Text queries to show (default: the examples "
                                                "saved by `unibind demo`, else the "
                                                "collection's captions or labels, else a few "
                                                "of its items)."),
           k: int = typer.Option(5, "--k", min=1),
           as_json: bool = JSON_OPTION) -> None:
    """One HTML page: dataset, training curve, 3x3 metrics, modality shares, plots, examples."""
    from unibind.report.html import build_report

    examples = None
    if query:
        from unibind.search.space import Space

        space = Space.load(run)
        examples = [space.search(text=q, k=k) for q in query]
    summary = build_report(run, out=out, examples=examples)
    emit(summary, as_json, f"report -> {summary['report']}")
