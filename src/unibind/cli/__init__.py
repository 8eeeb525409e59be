"""The ``unibind`` command: it parses arguments and calls library stages, nothing more.

Each stage's commands live in their own module here and register on ``app``.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on small or shared CPUs, spinning faiss/torch
# threads starve each other (faiss PQ training measured 59-89 s spinning vs 1.8 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from unibind.cli import bind, data, data_tuxpaint, demo, extract, index, search, train, view  # noqa: F401,E402  (register commands)
from unibind.cli._app import app, main

__all__ = ["app", "main"]
