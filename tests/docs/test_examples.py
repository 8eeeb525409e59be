"""Every shell and Python example of README.md and docs/ runs (the rules: ``examples.py``).

The blocks of one page run in order in one fresh temporary folder (a page is a walk-through:
later blocks use what earlier ones wrote), with ``HF_HUB_OFFLINE=1``, an isolated unibind cache
and the ``unibind`` command on PATH. A plain ``unibind ...`` command runs in this process (the
same typer app, without a new interpreter's import time); anything else runs in bash."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from tests.docs.examples import ROOT, Block, Command, all_blocks, output_matches
from tests.docs.setups import run_setup

BLOCKS = all_blocks()
_SHELL_CHARS = set("|&;<>$`")


@pytest.fixture(scope="session")
def page_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


@pytest.fixture(scope="session")
def shim_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a ``unibind`` script that runs this checkout's CLI with this Python."""
    folder = tmp_path_factory.mktemp("bin")
    script = folder / "unibind"
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c "
                      "\"import sys; from unibind.cli import main; sys.argv[0] = 'unibind'; "
                      "main()\" \"$@\"\n")
    script.chmod(0o755)
    return folder


def _env(shim: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _in_process(command: str) -> list[str] | None:
    """The arguments of a plain ``unibind ...`` command (no shell syntax), else None."""
    args = shlex.split(command, comments=True)
    if not args or args[0] != "unibind" or any(set(a) & _SHELL_CHARS for a in args):
        return None
    return args[1:]


def _run(command: str, cwd: Path, shim: Path) -> tuple[int, str]:
    """Run one command; return its exit status and its output (stdout and stderr together)."""
    args = _in_process(command)
    if args is None:
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(shim), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return proc.returncode, proc.stdout
    from typer.testing import CliRunner

    from unibind.cli import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, args, env={"HF_HUB_OFFLINE": "1",
                                                    "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    finally:
        os.chdir(old)
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        out += "".join(traceback.format_exception(*result.exc_info))
    return result.exit_code, out


def _check(block: Block, cmd: Command, status: int, output: str, last: bool) -> None:
    want = block.exit if last else 0
    where = f"{block.page} line {cmd.line}: $ {cmd.text}"
    assert status == want, f"{where}\nexit status {status}, expected {want}\n{output}"
    if cmd.expected:
        assert output_matches(cmd.expected, output), (
            f"{where}\nexpected output:\n" + "\n".join(cmd.expected) + f"\n--- got:\n{output}")


def _run_python(block: Block, cwd: Path, namespaces: dict[str, dict]) -> None:
    namespace = namespaces.setdefault(block.page, {"__name__": "__docs__"})
    old = Path.cwd()
    os.chdir(cwd)
    try:
        exec(compile(block.text, f"{block.page}:{block.line}", "exec"), namespace)
    finally:
        os.chdir(old)


_NAMESPACES: dict[str, dict] = {}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example(block: Block, page_dirs: dict[str, Path], shim_bin: Path,
                 tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    if block.skip:
        pytest.skip(f"{block.id}: {block.skip}")
    if block.page not in page_dirs:
        page_dirs[block.page] = tmp_path_factory.mktemp(Path(block.page).stem)
    cwd = page_dirs[block.page]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for kind, *where in block.setups:
        run_setup(kind, cwd / (where[0] if where else "."))
    if block.lang == "python":
        _run_python(block, cwd, _NAMESPACES)
        return
    commands = block.commands()
    if not commands:  # a script: one bash run, no output shown to check
        status, output = _run("set -eo pipefail\n" + block.text, cwd, shim_bin)
        assert status == block.exit, f"{block.id}: exit status {status}, expected " \
                                     f"{block.exit}\n{output}"
        return
    for i, cmd in enumerate(commands):
        status, output = _run(cmd.text, cwd, shim_bin)
        _check(block, cmd, status, output, last=i == len(commands) - 1)
