"""``unibind demo``: the whole pipeline, offline, on Tux Paint's stamps or a folder."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, app, emit
from unibind.encoders.profiles import PROFILES


@app.command("demo")
def demo(data: Path = typer.Option(None, "--data",
                                   help="Use this DIR/<label>/<files> folder instead of the "
                                        "Tux Paint stamps."),
         out: Path = typer.Option(None, "--out", help="Output folder (default: "
                                                      "~/.cache/unibind/demo)."),
         profile: str = typer.Option("offline", "--profile",
                                     help=f"Encoder profile: {' | '.join(PROFILES)}."),
         preset: str = typer.Option("default", "--preset", help="Training preset."),
         epochs: int = typer.Option(None, "--epochs", min=1, help="Override the epochs."),
         k: int = typer.Option(5, "--k", min=1, help="Results per example query."),
         deb: Path = typer.Option(None, "--deb", help="A downloaded tuxpaint-stamps-default "
                                                     ".deb (skips apt-get download)."),
         plot_method: str = typer.Option("umap", "--plot-method", help="umap | pca."),
         serve: bool = typer.Option(False, "--serve",
                                    help="Then serve the run's search page (`unibind serve`)."),
         port: int = typer.Option(8000, "--port", help="Port for --serve (on 127.0.0.1)."),
         as_json: bool = JSON_OPTION) -> None:
    """data -> extract -> train -> evaluate (held-out) -> index -> searches -> plot + report."""
    from unibind.demo import demo_text, run_demo

    summary = run_demo(data=data, out=out, profile=profile, preset=preset, k=k,
                       plot_method=plot_method, deb=deb, epochs=epochs,
                       progress=lambda msg: typer.echo(f"[demo] {msg}", err=True))
    emit(summary, as_json, demo_text(summary))
    if serve:
        from unibind.cli.serve import start_server

        start_server(Path(summary["out"]) / "run", port=port)
