"""The documentation site: it builds strictly (no broken link or reference), its generated CLI
reference matches the code, every command and public function has a docstring, and no page or
source file cites tracker numbers or paths outside the repository."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.examples import ROOT

CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"


def test_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--site-dir", str(tmp_path / "site")], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "cli.html").is_file()


def test_cli_reference_is_up_to_date() -> None:
    from unibind.cli.reference import render

    assert CLI_PAGE.read_text(encoding="utf-8") == render(), (
        "docs/reference/cli.md is stale: run `python -m unibind.cli.reference "
        "docs/reference/cli.md` (or `make docs`)")


def _commands() -> list[tuple[str, object]]:
    import typer

    from unibind.cli import app

    found = []

    def walk(command, path):
        found.append((" ".join(path), command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["unibind"])
    return found


def test_every_cli_command_has_a_docstring() -> None:
    missing = [name for name, command in _commands() if not (command.help or "").strip()]
    assert not missing, f"commands without a docstring (their --help text): {missing}"


def _public_modules() -> list[str]:
    import unibind

    names = ["unibind"]
    for info in pkgutil.walk_packages(unibind.__path__, "unibind."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]) or parts[1] == "cli":
            continue  # private modules; the CLI is covered by its help texts
        names.append(info.name)
    return names


def _public_functions(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    names = exported if exported is not None else [n for n in vars(module)
                                                   if not n.startswith("_")]
    out = []
    for name in names:
        obj = getattr(module, name, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and \
                getattr(obj, "__module__", None) == module_name:
            out.append((f"{module_name}.{name}", obj))
    return out


def test_lazy_exports_have_docstrings() -> None:
    import unibind

    missing = [name for name in unibind.__all__ if name != "__version__"
               and not inspect.getdoc(getattr(unibind, name))]
    assert not missing, f"unibind exports without a docstring: {missing}"


def test_public_modules_and_functions_have_docstrings() -> None:
    pytest.importorskip("torch")
    missing = []
    for module_name in _public_modules():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an optional extra (ray, pymilvus, fastapi) is not installed
            continue
        if not (module.__doc__ or "").strip():
            missing.append(module_name)
        missing += [name for name, obj in _public_functions(module_name)
                    if not (obj.__doc__ or "").strip()]
    assert not missing, "public modules, functions or classes without a docstring:\n" + \
        "\n".join(missing)


_ISSUE = re.compile(r"\b(issues?|tickets?|pull requests?|PR|GH)[ -]?#?\d+", re.I)
_OUTSIDE = re.compile(r"\.\./shared\b")
_TEXT = {".py", ".md", ".yml", ".yaml", ".toml", ".txt", ".html", ".js", ".css", ".cfg"}


def _project_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "mkdocs.yml"]
    for top in ("src", "tests", "benchmarks", "docs", "scripts"):
        files += [p for p in (ROOT / top).rglob("*") if p.suffix in _TEXT and p.is_file()]
    return files


def test_no_tracker_numbers_or_outside_paths() -> None:
    offenders = []
    for path in _project_files():
        if path == Path(__file__):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                 .splitlines(), 1):
            if _ISSUE.search(line) or _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not offenders, "tracker numbers or paths outside the repository:\n" + \
        "\n".join(offenders)
