"""Each modality described once: the registry every stage consults instead of branching on names.

A modality is a key (``"text"``, ``"image"``, ``"audio"``) plus a ``Modality`` record saying how
its items are given (inline text in the manifest, or a file), which file extensions a folder scan
maps to it, which encoder backend ``--<name>-encoder SOURCE`` uses, how plots and reports draw it.
``register_modality`` adds one (e.g. a toy fourth modality with its own encoder backend); every
stage then handles it without further changes. This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unibind.errors import UsageError, unknown


@dataclass(frozen=True)
class Modality:
    """What the code needs to know about one modality."""

    name: str
    #: items are text in the manifest's ``text`` column (or read from the text file at ``path``);
    #: otherwise every item is a file at ``path``.
    inline: bool = False
    #: file extensions (lower case, with the dot) a folder scan assigns to this modality
    extensions: frozenset[str] = frozenset()
    #: encoder backend used when a model source alone is given (``--<name>-encoder SOURCE``)
    override_backend: str | None = None
    #: encoder (``{"backend", "source", "options"}``) for profiles that name none for it
    default_encoder: Mapping[str, Any] | None = None
    #: output dims of well-known model sources, to list profiles without loading models
    known_dims: Mapping[str, int] = field(default_factory=dict)
    #: plot colour and marker (matplotlib)
    color: str = "#7f7f7f"
    marker: str = "o"
    #: how the HTML report previews a result: "image" (thumbnail), "audio" (player) or "none"
    preview: str = "none"
    #: content check of an uploaded query file (the service's upload field of this name):
    #: ``sniff(path)`` -> None if the bytes are not this modality, else what decoding it costs,
    #: read from the header (e.g. ``{"pixels": 1e6}``); raises for a header no real file has
    sniff: Callable[[Path], Mapping[str, float] | None] | None = field(default=None,
                                                                       compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier() or self.name != self.name.lower():
            raise UsageError(f"modality names are lower-case identifiers, not {self.name!r}")
        object.__setattr__(self, "extensions", frozenset(e.lower() for e in self.extensions))
        object.__setattr__(self, "known_dims", MappingProxyType(dict(self.known_dims)))
        if self.preview not in ("image", "audio", "none"):
            raise UsageError(f"preview must be image, audio or none, not {self.preview!r}")

    def item_input(self, text: str, path: str, resolve: Callable[[str], Path]) -> str | Path:
        """The raw input of one manifest row: its text (inline modalities), else its file."""
        if self.inline:
            return text if text.strip() or not path else resolve(path).read_text(encoding="utf-8")
        return resolve(path)


_REGISTRY: dict[str, Modality] = {}


def _sniff_image(path: Path) -> Mapping[str, float] | None:
    from unibind.media.decode import sniff_image

    return sniff_image(path)


def _sniff_audio(path: Path) -> Mapping[str, float] | None:
    from unibind.media.decode import sniff_audio

    return sniff_audio(path)


def uploadable() -> tuple[str, ...]:
    """Modalities a query file can be uploaded as (those with a ``sniff`` hook), in order."""
    return tuple(m.name for m in _REGISTRY.values() if m.sniff is not None and not m.inline)


def register_modality(modality: Modality, replace: bool = False) -> Modality:
    """Add ``modality`` to the registry (``replace=True`` to redefine an existing name)."""
    if modality.name in _REGISTRY and not replace:
        raise UsageError(f"modality {modality.name!r} is already registered")
    clash = {e for m in _REGISTRY.values() if m.name != modality.name for e in m.extensions}
    if both := sorted(clash & modality.extensions):
        raise UsageError(f"extension(s) {both} already belong to another modality")
    _REGISTRY[modality.name] = modality
    return modality


def unregister_modality(name: str) -> None:
    """Remove a registered modality (tests; built-in ones can be re-registered afterwards)."""
    _REGISTRY.pop(get_modality(name).name)


def get_modality(name: str) -> Modality:
    """The ``Modality`` named ``name``; an unknown name lists the registered ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise unknown("modality", name, _REGISTRY) from None


def modality_names() -> tuple[str, ...]:
    """Registered modality names, in registration (canonical) order."""
    return tuple(_REGISTRY)


def check_modality(modality: str) -> str:
    """``modality`` itself if registered, else ``UsageError`` naming the allowed values."""
    return get_modality(modality).name


def modality_of_extension(ext: str) -> str | None:
    """The modality a file with extension ``ext`` (e.g. ``.png``) belongs to, if any."""
    ext = ext.lower()
    return next((m.name for m in _REGISTRY.values() if ext in m.extensions), None)


def ordered(names: Iterator[str] | Sequence[str] | set[str]) -> list[str]:
    """``names`` restricted to registered modalities, in canonical order."""
    present = set(names)
    return [m for m in _REGISTRY if m in present]


class _Names(Sequence[str]):
    """A live, read-only view of the registered names (so ``MODALITIES`` follows registration)."""

    def __getitem__(self, i):  # noqa: ANN001, ANN204
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


#: the registered modality names (a live view; ``modality_names()`` gives a snapshot tuple)
MODALITIES: Sequence[str] = _Names()

TEXT = register_modality(Modality(
    "text", inline=True, extensions=frozenset({".txt"}), override_backend="hf-text",
    known_dims={"bert-base-uncased": 768}, color="#1f77b4", marker="o"))
IMAGE = register_modality(Modality(
    "image", extensions=frozenset({  # what Pillow reads (tests/data/test_folder.py checks)
        ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".dib", ".gif",
        ".tif", ".tiff", ".ico", ".pbm", ".pgm", ".ppm", ".pnm", ".tga", ".pcx", ".sgi",
        ".qoi", ".jp2", ".j2k"}),
    override_backend="hf-clip", known_dims={"openai/clip-vit-large-patch14": 768},
    color="#ff7f0e", marker="s", preview="image", sniff=_sniff_image))
AUDIO = register_modality(Modality(
    "audio", extensions=frozenset({  # what soundfile (libsndfile) reads
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
        ".au", ".snd", ".caf", ".w64", ".rf64"}),
    override_backend="hf-clap", known_dims={"laion/larger_clap_general": 512},
    color="#2ca02c", marker="^", preview="audio", sniff=_sniff_audio))
BUILTIN: tuple[str, ...] = ("text", "image", "audio")
