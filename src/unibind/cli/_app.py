"""The root typer app and the helpers every command shares (logging, --json output, errors)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="unibind: one embedding space for text, images and sound.")

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON summary object on stdout.")


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def emit(summary: dict[str, Any], as_json: bool, human: str | None = None) -> None:
    """Print the summary: JSON on stdout with ``--json``, else ``human`` (or indented JSON)."""
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    else:
        typer.echo(human if human is not None else json.dumps(summary, indent=2, default=str))


def fail(message: str, code: int = 2) -> None:
    """Exit with a clear message on stderr (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    app()
