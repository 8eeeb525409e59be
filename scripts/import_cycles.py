"""Print the import cycles of ``src/unibind``, between modules and between rooms.

Every ``import`` statement counts, also those inside functions. A room is a subpackage directly
under ``unibind`` (``search``, ``training``, ...); top-level modules are rooms of their own. The
package's own ``__init__`` (lazy exports) is left out: it sits above every room by design.

Usage: ``python scripts/import_cycles.py [src/unibind]``; exit status 1 when a cycle exists.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (resolving relative and ``from x import y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def report(root: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(module cycles, room cycles) of the package at ``root``, the top ``__init__`` left out."""
    top = root.name
    edges = {m: {t for t in ts if t != top} for m, ts in graph(root).items() if m != top}
    rooms: dict[str, set[str]] = {}
    for src, targets in edges.items():
        for dst in targets:
            if room_of(src) != room_of(dst):
                rooms.setdefault(room_of(src), set()).add(room_of(dst))
    return cycles(edges), cycles(rooms)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "src/unibind")
    modules, rooms = report(root.resolve())
    print(f"import cycles between modules: {len(modules)}")
    for c in modules:
        print("  " + " <-> ".join(c))
    print(f"import cycles between rooms: {len(rooms)}")
    for c in rooms:
        print("  " + " <-> ".join(c))
    return 1 if modules or rooms else 0


if __name__ == "__main__":
    raise SystemExit(main())
