"""Every command's --help shows its texts whole: nothing in square brackets is eaten as rich
markup (``unibind[ray]`` once read ``unibind``)."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from unibind.cli import app

BRACKETED = re.compile(r"\\?\[([^][]+)\]")


def _commands(cmd: Any, path: tuple[str, ...] = ()):
    yield path, cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))


def test_no_help_text_loses_bracketed_words():
    root = typer.main.get_command(app)
    runner = CliRunner()
    checked = 0
    for path, cmd in _commands(root):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        words = [w for t in texts for w in BRACKETED.findall(t)]
        if not words:
            continue
        out = runner.invoke(app, [*path, "--help"], terminal_width=400).output
        flat = " ".join(out.replace("│", " ").split())
        for w in words:
            assert f"[{w}]" in flat, f"{' '.join(path)} --help lost [{w}]"
            checked += 1
    assert checked  # at least the extract --engine help has one
