"""Small helpers to save typed config dataclasses as JSON next to what they produced."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from unibind.errors import UnibindError, UsageError
from unibind.util.atomic import atomic_file

T = TypeVar("T")


class JsonError(UnibindError, ValueError):
    """A JSON file that cannot be parsed (the message names the file)."""


class NotSerialisable(UnibindError, TypeError):
    """A value with no JSON form was handed to ``write_json_atomic`` / ``to_dict``."""


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a damaged one raises ``JsonError`` (a ``ValueError``) naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JsonError(f"{path}: not valid JSON ({exc})") from exc


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON; readers never see a half-written file."""
    with atomic_file(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise NotSerialisable(f"not JSON serialisable: {type(value).__name__}")


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as a plain JSON-ready dict."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=_json_default))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error, others default."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"{cls.__name__}: unknown config keys {unknown}; known: {sorted(names)}")
    return cls(**data)


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write a dataclass config as JSON, atomically."""
    write_json_atomic(path, to_dict(config))


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    """Read a dataclass config of type ``cls`` from JSON."""
    return from_dict(cls, read_json(path))


def read_artifact_meta(path: Path, needed: list[str], error: type[Exception], kind: str,
                       hint: str) -> dict[str, Any]:
    """Open an artifact folder (features, run, index): undo an interrupted swap, check that the
    ``needed`` files exist and read the first one (its JSON metadata). Missing files or damaged
    JSON raise ``error`` naming the folder and ``hint`` (how to create one)."""
    from unibind.util.atomic import recover_folder

    recover_folder(path)
    absent = [n for n in needed if not (path / n).is_file()]
    if absent:
        raise error(f"{path} is not {kind} folder (missing {', '.join(absent)}); {hint}")
    try:
        return read_json(path / needed[0])
    except ValueError as exc:
        raise error(f"damaged {kind.split()[-1]} folder: {exc}") from exc
