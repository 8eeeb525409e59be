"""The documentation's examples as data: every fenced block of README.md and docs/*.md that the
suite runs, with the directives written on the lines before it.

Languages run: ``console``, ``bash``, ``sh`` (shell) and ``python``. Directives, each an HTML
comment on its own line right before the fence (several may stack):

- ``<!-- skip: reason -->``: the block is not run; the test is reported skipped with the reason.
- ``<!-- exit: N -->``: the block's last command must exit with status N (default 0).
- ``<!-- setup: KIND DIR -->``: before the block, the harness writes test data into DIR (kinds in
  ``tests/docs/setups.py``); it is invisible on the rendered page.

In a shell block, lines starting with ``$ `` are commands (a trailing ``\\`` continues one onto the
next line) and the lines after a command, up to the next one, are its expected output; a block
with no ``$ `` line is one script. ``...`` in expected output stands for any text (a line of its
own: any number of lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = {"console", "bash", "sh", "shell"}
LANGUAGES = SHELL | {"python"}
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<key>skip|exit|setup)\s*:\s*(?P<value>.*?)\s*-->\s*$")


@dataclass
class Command:
    """One ``$ `` command of a shell block and the output the page shows for it."""

    line: int
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    """One fenced example block and its directives."""

    page: str
    line: int
    lang: str
    text: str
    skip: str | None = None
    exit: int = 0
    setups: list[list[str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def commands(self) -> list[Command]:
        """The ``$ `` commands with their expected output (empty when the block is a script)."""
        commands: list[Command] = []
        lines = self.text.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                cmd = Command(self.line + 1 + i, line[2:])
                while cmd.text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd.text = cmd.text[:-1] + " " + lines[i].lstrip("> ").strip()
                commands.append(cmd)
            elif commands:
                commands[-1].expected.append(line)
            i += 1
        for cmd in commands:  # trailing blank lines are not output
            while cmd.expected and not cmd.expected[-1].strip():
                cmd.expected.pop()
        return commands


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file, in page order."""
    page = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: dict = {"skip": None, "exit": 0, "setups": []}
    i = 0
    while i < len(lines):
        if m := _DIRECTIVE.match(lines[i]):
            key, value = m["key"], m["value"]
            if key == "skip":
                pending["skip"] = value or "no reason given"
            elif key == "exit":
                pending["exit"] = int(value)
            else:
                pending["setups"].append(value.split())
            i += 1
            continue
        if m := _FENCE.match(lines[i]):
            fence, indent = m["fence"], len(m["indent"])
            start = i
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
                i += 1
            if m["lang"] in LANGUAGES:
                blocks.append(Block(page, start + 1, m["lang"], "\n".join(body) + "\n",
                                    skip=pending["skip"], exit=pending["exit"],
                                    setups=pending["setups"]))
            pending = {"skip": None, "exit": 0, "setups": []}
        elif lines[i].strip():
            pending = {"skip": None, "exit": 0, "setups": []}  # directives bind to the next fence
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in pages() for block in parse(path)]


def output_pattern(expected: list[str]) -> re.Pattern[str]:
    """A regex for expected output lines: ``...`` matches any text; a ``...`` line, any lines.

    The lines must appear in order and contiguous (apart from ``...``) somewhere in the output:
    log lines before or after the shown output are allowed."""
    parts = []
    for line in expected:
        stripped = line.rstrip()
        if stripped.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"^" + ".*?".join(re.escape(p) for p in stripped.split("...")) +
                         r"[ \t]*\n")
    return re.compile("".join(parts), re.MULTILINE)


def screen(actual: str) -> str:
    """Output as a terminal shows it: a carriage return (progress bars) rewrites its line, and a
    cleared bar leaves only blanks (stdout and stderr captured apart can put them before a line)."""
    lines = actual.replace("\r\n", "\n").split("\n")
    lines = [re.sub(r"^ {8,}", "", line.rsplit("\r", 1)[-1]).rstrip() for line in lines]
    return "\n".join(lines).strip("\n") + "\n"


def output_matches(expected: list[str], actual: str) -> bool:
    text = screen(actual)
    return output_pattern(expected).search(text) is not None
