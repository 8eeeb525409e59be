"""The ``unibind`` command: it parses arguments and calls library stages, nothing more.

Each stage's commands live in their own module here and register on ``app``. Importing this
package changes nothing global and imports no command: edge settings (environment) are made in
``main()`` only, before the commands (and torch, faiss) are imported.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _load_app() -> Any:
    # one module per command (group), registered on import; this order is the order of `--help`
    from unibind.cli import data, demo, extract, encoders, index, search  # noqa: F401,I001
    from unibind.cli import train, evaluate, tune, synthetic, plot, report, scale  # noqa: F401,I001
    from unibind.cli import bind  # noqa: F401,I001
    from unibind.cli import serve  # noqa: F401
    from unibind.cli._app import app

    return app


def main() -> None:
    """The console entry point: process-wide settings first, then the command."""
    # Idle OpenMP threads sleep instead of spinning: on small or shared CPUs, spinning faiss/torch
    # threads starve each other (faiss PQ training measured 59-89 s spinning vs 1.8 s passive).
    # Set before torch/faiss load their OpenMP runtime, i.e. before the commands are imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not {"-v", "--verbose"} & set(sys.argv[1:]):  # other libraries' bars only with -v
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _load_app()()


def __getattr__(name: str) -> Any:
    if name == "app":  # ``from unibind.cli import app`` (tests, embedding the CLI)
        return _load_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
