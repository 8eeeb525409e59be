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


class TqdmLogHandler(logging.Handler):
    """Log records written through ``tqdm.write``: a progress bar is cleared, the line printed
    whole, the bar redrawn below it (bars never tear log lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging must never raise)
            self.handleError(record)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    """Default: unibind's own INFO messages, other libraries' warnings only; -v: everything."""
    handler = TqdmLogHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler],
                        force=True)
    logging.getLogger("unibind").setLevel(logging.DEBUG if verbose else logging.INFO)


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
