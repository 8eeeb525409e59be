"""The CLI reference page, generated from the typer app: every command, argument and option,
with its type, default, range and help (where the allowed values are named).

``python -m unibind.cli.reference docs/reference/cli.md`` writes the page; a test checks that the
committed page equals what this module renders, so the reference never drifts from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HEADER = """# CLI reference

Generated from the `unibind` command's own definitions by `unibind.cli.reference`
(`python -m unibind.cli.reference docs/reference/cli.md`); a test fails when this page and the
code disagree. `unibind CMD --help` prints the same in a terminal.

Exit status: 0 success, 1 some items failed (the others are written and the failures listed),
2 bad input or arguments (one `error: ...` line on stderr); see [Errors](../errors.md).
"""


# Options whose allowed values live in a library registry: (command name or "*", option) ->
# (module, attribute, values before, values after). The page lists them from there, never
# copied by hand.
ALLOWED: dict[tuple[str, str], tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    ("*", "--profile"): ("unibind.encoders.profiles", "PROFILES", (), ()),
    ("*", "--preset"): ("unibind.training.config", "PRESETS", (), ()),
    ("*", "--balance"): ("unibind.search.merge", "MODES", (), ()),
    ("*", "--dtype"): ("unibind.util.runtime", "DTYPES", ("auto",), ()),
    ("*", "--engine"): ("unibind.features.extract", "ENGINES", (), ()),
    ("*", "--positives"): ("unibind.training.losses", "POSITIVES", (), ()),
    ("folder", "--labels"): ("unibind.data.folder", "LABEL_MODES", (), ()),
    ("captions", "--backend"): ("unibind.data.captions", "BACKENDS", (), ()),
    ("evaluate", "--split"): ("unibind.data.manifest", "SPLITS", (), ("all",)),
    ("plot", "--method"): ("unibind.report.plots", "METHODS", (), ()),
    ("demo", "--plot-method"): ("unibind.report.plots", "METHODS", (), ()),
    ("bind", "--method"): ("unibind.binding.bridge", "METHODS", (), ()),
}


def allowed_values(command: str, option: str) -> list[str] | None:
    """The allowed values of ``option`` of ``command``, read from the library's registry."""
    import importlib

    entry = ALLOWED.get((command, option)) or ALLOWED.get(("*", option))
    if entry is None:
        return None
    module, attribute, before, after = entry
    values = [v for v in getattr(importlib.import_module(module), attribute)
              if v not in before + after]
    return [*before, *values, *after]


def _cell(text: Any) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text.replace("<", "&lt;").replace(">", "&gt;")  # DIR/<label> is text, not HTML


def _type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    name = str(param.bare_type()).replace("typing.", "")
    if name.startswith("list[") and name.endswith("]"):
        name = name[5:-1] + ", repeatable"
    rng = [f"≥ {param.min}" if param.min is not None else "",
           f"≤ {param.max}" if param.max is not None else ""]
    return ", ".join([name, *[r for r in rng if r]])


def _default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or default == [] or default == ():
        return "-"
    if getattr(param, "is_flag", False):
        return "on" if default else "off"
    return f"`{default}`"


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`"
    names = [*param.opts, *param.secondary_opts]
    return ", ".join(f"`{n}`" for n in sorted(names, key=lambda n: (n.startswith("--"), n)))


def _usage(command: Any, path: list[str]) -> str:
    pieces = [" ".join(path)]
    if any(p.param_type_name == "option" for p in command.params):
        pieces.append("[OPTIONS]")
    for param in command.params:
        if param.param_type_name == "argument":
            name = param.metavar or param.name.upper()
            name = f"{{{name}}}" if " " in name else name
            dots = "..." if param.nargs == -1 and not name.endswith("...") else ""
            pieces.append(name + dots if param.required else f"[{name}{dots}]")
    if getattr(command, "commands", None):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _command(command: Any, path: list[str], level: int) -> list[str]:
    name = " ".join(path)
    out = [f"{'#' * level} `{name}`", ""]
    subcommands = getattr(command, "commands", {})
    usage = _usage(command, path)
    out += ["```text", usage, "```", ""]
    if command.help:
        for para in command.help.strip().split("\n\n"):
            out += [_cell(para).replace("\\|", "|"), ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        out += ["| argument / option | type | default | description |", "|---|---|---|---|"]
        for p in params:
            text = getattr(p, "help", None) or ""
            values = (allowed_values(path[-1], p.opts[0])
                      if p.param_type_name == "option" else None)
            if values:
                text = f"{text} Allowed: {', '.join(f'`{v}`' for v in values)}.".strip()
            out.append(f"| {_names(p)} | {_cell(_type(p))} | {_cell(_default(p))} | "
                       f"{_cell(text)} |")
        out.append("")
    if subcommands:
        out += ["Commands: " + ", ".join(
            f"[`{name} {sub}`](#{'-'.join([*path, sub])})" for sub in subcommands), ""]
        for sub_name, sub in subcommands.items():
            out += _command(sub, [*path, sub_name], min(level + 1, 4))
    return out


def render() -> str:
    """The reference page (Markdown) for the whole ``unibind`` command tree."""
    import typer

    from unibind.cli import app

    root = typer.main.get_command(app)
    lines = [HEADER]
    lines += _command(root, ["unibind"], 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the page to the path given (default: print it)."""
    args = sys.argv[1:] if argv is None else argv
    page = render()
    if args:
        Path(args[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(args[0]).write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)


if __name__ == "__main__":
    main()
