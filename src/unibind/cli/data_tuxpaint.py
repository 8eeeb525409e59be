"""``unibind data tuxpaint``: Tux Paint's stamps as an image/caption/sound manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import JSON_OPTION, emit, fail
from unibind.cli.data import data_app


@data_app.command("tuxpaint")
def tuxpaint(out: Path = typer.Option(None, "--out", help="Output folder (manifest.parquet "
                                                          "inside; default: the user cache)."),
             deb: Path = typer.Option(None, "--deb", help="Use this .deb instead of "
                                                          "`apt-get download`."),
             source: Path = typer.Option(None, "--source", help="An already unpacked package "
                                                                "(or its stamps folder)."),
             level: int = typer.Option(1, "--level", min=1,
                                       help="Label = this many folder levels (1: category)."),
             extras: bool = typer.Option(True, "--extras/--triples-only",
                                         help="Also keep stamps without a sound (image + "
                                              "caption)."),
             as_json: bool = JSON_OPTION) -> None:
    """Debian's tuxpaint-stamps-default (GPL-2): image + caption (+ sound) per stamp."""
    from unibind.data.tuxpaint import TuxpaintError, build_tuxpaint

    try:
        summary = build_tuxpaint(out=out, deb=deb, source=source, level=level, extras=extras)
    except (TuxpaintError, OSError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"licence: {summary['licence']}", err=True)
    emit(summary, as_json)
