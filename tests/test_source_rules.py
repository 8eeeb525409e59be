"""Rules on the source itself: every raise is a project error (``UnibindError``) and every
dotted ``unibind.x.y`` path a docstring names exists."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "unibind"
BUILTIN_ERRORS = {name for name, obj in vars(builtins).items()
                  if isinstance(obj, type) and issubclass(obj, BaseException)}
# protocol raises: module __getattr__ must raise AttributeError; abstract methods
ALLOWED = {"AttributeError": "__getattr__", "NotImplementedError": None}


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


def _functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each Raise node -> the name of the function it is in."""
    where = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Raise):
                    where[node] = fn.name
    return where


def test_every_raise_is_a_project_error():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = _functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            name = _raised_name(node)
            if name not in BUILTIN_ERRORS:
                continue
            if name in ALLOWED and ALLOWED[name] in (None, where.get(node)):
                continue
            bad.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: raise {name}")
    assert not bad, "raise a UnibindError subclass (keep the builtin as a second base):\n" + \
        "\n".join(bad)


DOTTED = re.compile(r"\bunibind(?:\.[a-z_][a-z0-9_]*)+")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_docstrings_name_real_module_paths():
    import warnings

    bad = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                     ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node) or ""
            for dotted in set(DOTTED.findall(doc)):
                with warnings.catch_warnings():
                    warnings.simplefilter("error", DeprecationWarning)  # old aliases do not count
                    try:
                        ok = _resolves(dotted.rstrip("."))
                    except DeprecationWarning:
                        ok = False
                if not ok:
                    bad.append(f"{path.relative_to(SRC.parent)}: {dotted}")
    assert not bad, "docstrings name paths that do not exist:\n" + "\n".join(sorted(bad))
