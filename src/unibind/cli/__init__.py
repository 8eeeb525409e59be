"""The ``unibind`` command: it parses arguments and calls library stages, nothing more.

Each stage's commands live in their own module here and register on ``app``.
"""

from __future__ import annotations

from . import data, data_tuxpaint, demo, extract, index, search, train, view  # noqa: F401,E402  (register commands)
from ._app import app, main

__all__ = ["app", "main"]
