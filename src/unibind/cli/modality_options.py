"""Per-modality CLI options generated from the modality registry (``unibind.modalities``).

``with_modality_options(make)`` wraps a command whose function takes the per-modality values
as ``**values``: the signature typer reads is the function's own plus the options ``make()``
returns for the modalities registered *when the command line is parsed*, so a modality
registered after import (``register_modality``) gets ``--<name>`` on ``unibind search`` and
``--<name>-encoder`` on ``unibind extract`` with no other change.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from unibind.modalities import get_modality, modality_names

QUERY_HELP = {"text": "Query text (repeatable).", "image": "Query image file (repeatable).",
              "audio": "Query sound file (repeatable)."}
ENCODER_HELP = {"text": "Hub id or folder for text (BERT).",
                "image": "Hub id or folder for images (CLIP).",
                "audio": "Hub id or folder for audio (CLAP)."}


def query_options() -> list[inspect.Parameter]:
    """``--<name>`` per registered modality: texts for inline modalities, files otherwise."""
    out = []
    for m in modality_names():
        inline = get_modality(m).inline
        what = QUERY_HELP.get(m) or f"Query {m} {'text' if inline else 'file'} (repeatable)."
        out.append(inspect.Parameter(m, inspect.Parameter.KEYWORD_ONLY,
                                     default=typer.Option(None, f"--{m}", help=what),
                                     annotation=list[str] if inline else list[Path]))
    return out


def encoder_options() -> list[inspect.Parameter]:
    """``--<name>-encoder SOURCE`` per registered modality (a hub id or a model folder)."""
    out = []
    for m in modality_names():
        backend = get_modality(m).override_backend
        what = ENCODER_HELP.get(m) or (f"Hub id or folder for {m} ({backend} backend)." if backend
                                       else f"Model folder for {m} (its default backend).")
        out.append(inspect.Parameter(f"{m}_encoder", inspect.Parameter.KEYWORD_ONLY,
                                     default=typer.Option(None, f"--{m}-encoder", help=what),
                                     annotation=str))
    return out


def query_flags() -> str:
    """``--text, --image or --audio`` (every registered modality), for messages."""
    flags = [f"--{m}" for m in modality_names()]
    return ", ".join(flags[:-1]) + f" or {flags[-1]}" if len(flags) > 1 else flags[0]


class WithModalityOptions:
    """A command callable whose signature grows the registry's options each time it is read."""

    def __init__(self, fn: Callable[..., Any], make: Callable[[], list[inspect.Parameter]],
                 after: str | None = None):
        self._fn, self._make, self._after = fn, make, after
        self.__name__, self.__qualname__ = fn.__name__, fn.__qualname__
        self.__module__, self.__doc__ = fn.__module__, fn.__doc__

    @property
    def __signature__(self) -> inspect.Signature:  # noqa: PLW3201 (read by inspect/typer)
        base = inspect.signature(self._fn, eval_str=True)
        own = [p for p in base.parameters.values() if p.kind != p.VAR_KEYWORD]
        taken = {p.name for p in own}
        extra = [p.replace(kind=p.POSITIONAL_OR_KEYWORD) for p in self._make()
                 if p.name not in taken]
        names = [p.name for p in own]
        at = (names.index(self._after) + 1 if self._after in names else  # after `after`, else
              next((i for i, p in enumerate(own)  # right after the arguments
                    if not isinstance(p.default, typer.models.ArgumentInfo)), len(own)))
        return base.replace(parameters=[*own[:at], *extra, *own[at:]])

    @property
    def __annotations__(self) -> dict[str, Any]:  # noqa: PLW3201 (read by get_type_hints)
        sig = self.__signature__
        return {p.name: p.annotation for p in sig.parameters.values()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


def with_modality_options(make: Callable[[], list[inspect.Parameter]], after: str | None = None
                          ) -> Callable[[Callable[..., Any]], WithModalityOptions]:
    """Decorator (below ``@app.command``): the command also takes ``make()``'s options, placed
    after the parameter ``after`` (default: after the arguments)."""
    return lambda fn: WithModalityOptions(fn, make, after)
