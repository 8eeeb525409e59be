"""``unibind plot RUN``: a 2-D map of the run's space (by class, by modality)."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, RUN_ARG, app, emit


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

    summary = plot_run(run, out=out, max_points=max_points, method=method, seed=seed)
    emit(summary, as_json, f"plots -> {summary['by_class']}, {summary['by_modality']} "
                           f"({summary['points']} of {summary['total']} items)")
