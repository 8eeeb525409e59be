"""The root typer app and the helpers every command shares (logging, --json output, errors).

Errors are handled in ONE place, ``UnibindGroup.invoke``: a ``UnibindError`` prints one
``error: ...`` line on stderr and exits with its ``exit_code`` (2: bad input or arguments, 1: some
items failed); any other exception is a bug and keeps its traceback. Command modules import
heavy libraries inside their functions so that ``unibind --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from unibind.errors import ItemsFailed, UnibindError, UsageError


class UnibindGroup(TyperGroup):
    """The root command group: turns a ``UnibindError`` from any command into one line."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UnibindError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:  # Ctrl-C outside a stage that counts what it saved
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(cls=UnibindGroup, add_completion=False, no_args_is_help=True,
                  help="unibind: one embedding space for text, images and sound.")

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON summary object on stdout.")
FEATURES_ARG = typer.Argument(..., help="Features folder (from `unibind extract`).")
RUN_ARG = typer.Argument(..., help="Run folder (from `unibind train`).")


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
    """Refuse a bad argument combination: ``error: message`` on stderr, exit status ``code``."""
    error = UsageError(message)
    error.exit_code = code
    raise error


def check_items(summary: dict[str, Any], where: str) -> None:
    """Exit status 1 when some items failed (they are listed in the summary and ``where``)."""
    if errors := summary.get("errors"):
        raise ItemsFailed(f"{len(errors)} item(s) failed; see {where}")


def main() -> None:
    app()
