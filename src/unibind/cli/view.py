"""``unibind plot RUN`` and ``unibind report RUN``."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit, fail

RUN_ARG = typer.Argument(..., help="Run folder (from `unibind train`).")


@app.command("plot")
def plot(run: Path = RUN_ARG,
         out: Path = typer.Option(None, "--out", help="Folder for the PNGs (default RUN/plots)."),
         max_points: int = typer.Option(5000, "--max-points", min=10,
                                        help="Sample this many items when there are more."),
         method: str = typer.Option("umap", "--method", help="umap | pca (fast, no UMAP)."),
         seed: int = typer.Option(0, "--seed"),
         as_json: bool = JSON_OPTION) -> None:
    """UMAP of every item of the run: by class and by modality (two PNGs)."""
    from unibind.report.plots import plot_run

    try:
        summary = plot_run(run, out=out, max_points=max_points, method=method, seed=seed)
    except (ValueError, OSError, KeyError) as exc:
        fail(str(exc))
    emit(summary, as_json, f"plots -> {summary['by_class']}, {summary['by_modality']} "
                           f"({summary['points']} of {summary['total']} items)")


@app.command("report")
def report(run: Path = RUN_ARG,
           out: Path = typer.Option(None, "--out", help="HTML file (default RUN/report.html)."),
           query: list[str] = typer.Option(None, "--query",
                                           help="Text queries to show (default: the examples "
                                                "saved by `unibind demo`, if any)."),
           k: int = typer.Option(5, "--k", min=1),
           as_json: bool = JSON_OPTION) -> None:
    """One HTML page: dataset, training curve, 3x3 metrics, modality shares, plots, examples."""
    from unibind.report.html import build_report

    try:
        examples = None
        if query:
            from unibind.search.space import Space

            space = Space.load(run)
            examples = [space.search(text=q, k=k) for q in query]
        summary = build_report(run, out=out, examples=examples)
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        fail(str(exc))
    emit(summary, as_json, f"report -> {summary['report']}")
