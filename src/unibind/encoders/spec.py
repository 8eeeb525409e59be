"""What names an encoder (``EncoderSpec``) and what identifies its outputs (fingerprint).

The fingerprint is computed WITHOUT loading the model, so that a cached extraction never has to
load one: backend + options + the model's identity (hub id and revision, or a digest of a local
folder's config, preprocessing files and weight headers).

A hub id is pinned to the commit its revision resolves to ONCE, before anything is downloaded
(``pin``): the local hub cache when it knows the revision, else the hub's API. The pinned spec is
what gets loaded, fingerprinted and recorded, so the identity never drifts between the first
download and later searches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unibind.errors import UnibindError
from unibind.modalities import check_modality

COMMIT = re.compile(r"^[0-9a-f]{40}$")


class EncoderLoadError(UnibindError, OSError):
    """An encoder's model cannot be loaded (hub unreachable, folder or package missing)."""


class HubRevisionError(EncoderLoadError):
    """A hub id whose revision cannot be resolved to a commit (offline and not downloaded)."""


_CONFIG_FILES = ("config.json", "preprocessor_config.json", "tokenizer_config.json",
                 "tokenizer.json", "vocab.txt", "special_tokens_map.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl", ".ckpt")
_EDGE_BYTES = 1 << 20


class ModelFileError(UnibindError, ValueError):
    """A model file is corrupt, not the pinned one, or does not fit the spec's options."""


@dataclass(frozen=True)
class EncoderSpec:
    """A backend name, a model source (hub id or local folder) and backend options."""

    modality: str
    backend: str
    source: str
    revision: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_modality(self.modality)

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "backend": self.backend, "source": self.source,
                "revision": self.revision, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | EncoderSpec) -> EncoderSpec:
        if isinstance(data, EncoderSpec):
            return data
        return cls(modality=data["modality"], backend=data["backend"], source=data["source"],
                   revision=data.get("revision"), options=dict(data.get("options") or {}))

    @property
    def is_local(self) -> bool:
        return Path(self.source).expanduser().exists()


def _digest_edges(path: Path, h: hashlib._Hash) -> None:
    """Size plus first and last MiB: cheap yet changes whenever weights change in practice."""
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_EDGE_BYTES))
        if size > 2 * _EDGE_BYTES:
            fh.seek(size - _EDGE_BYTES)
            h.update(fh.read(_EDGE_BYTES))


def folder_digest(folder: str | os.PathLike) -> str:
    """Digest of a model folder: full config/preprocessing files, edges of weight files."""
    folder = Path(folder).expanduser()
    h = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if file.name in _CONFIG_FILES or file.suffix == ".json":
            h.update(rel.encode())
            h.update(file.read_bytes())
        elif file.suffix in _WEIGHT_SUFFIXES:
            _digest_edges(file, h)
    return h.hexdigest()


def hub_revision(repo_id: str, revision: str | None) -> str:
    """The commit a hub id resolves to in the local HF cache, else the revision asked for."""
    wanted = revision or "main"
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover
        return wanted
    ref = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / wanted
    return ref.read_text().strip() if ref.is_file() else wanted


def resolve_hub_revision(repo_id: str, revision: str | None) -> str:
    """The commit ``revision`` (default "main") of hub model ``repo_id`` points to now.

    A commit stays as it is; the local hub cache answers when it has the revision; otherwise the
    hub's API (``HF_ENDPOINT``) is asked. Raises ``HubRevisionError`` when neither can."""
    wanted = revision or "main"
    if COMMIT.match(wanted):
        return wanted
    cached = hub_revision(repo_id, wanted)
    if COMMIT.match(cached):
        return cached
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        raise HubRevisionError(
            f"{repo_id!r} (revision {wanted!r}) is not in the local Hugging Face cache and the hub "
            "is offline (HF_HUB_OFFLINE); download it once online, use --profile offline, or "
            "give a local model folder")
    try:
        info = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).model_info(
            repo_id, revision=wanted)
    except Exception as exc:  # network, auth, missing repo: one clear message
        raise HubRevisionError(f"cannot resolve {repo_id!r} revision {wanted!r} on the Hugging "
                               f"Face hub: {type(exc).__name__}: {exc}") from exc
    if not info.sha or not COMMIT.match(info.sha):
        raise HubRevisionError(f"the hub gave no commit for {repo_id!r} revision {wanted!r}")
    _remember_ref(repo_id, wanted, info.sha)
    return info.sha


def _remember_ref(repo_id: str, revision: str, commit: str) -> None:
    """Record ``revision -> commit`` in the hub cache as a download by name would (the pinned
    download is by commit), so that the same id resolves offline later."""
    from huggingface_hub.constants import HF_HUB_CACHE

    from unibind.util.atomic import atomic_file

    refs = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs"
    target = refs / revision
    if ".." in Path(revision).parts or not target.resolve().is_relative_to(refs.resolve()):
        return
    try:
        with atomic_file(target, "w") as fh:
            fh.write(commit)
    except OSError:  # a read-only cache: resolution simply happens online again next time
        pass


def pin(spec: EncoderSpec) -> EncoderSpec:
    """``spec`` with a hub id's revision replaced by its commit (local folders unchanged)."""
    if spec.is_local:
        return spec
    commit = resolve_hub_revision(spec.source, spec.revision)
    if commit == spec.revision:
        return spec
    return EncoderSpec(spec.modality, spec.backend, spec.source, commit, dict(spec.options))


def identity(spec: EncoderSpec) -> dict[str, Any]:
    """Where the weights come from, pinned as far as can be told offline."""
    if spec.is_local:
        return {"source": str(Path(spec.source).expanduser().resolve()),
                "content": folder_digest(spec.source)}
    return {"source": spec.source, "revision": hub_revision(spec.source, spec.revision)}


def fingerprint(spec: EncoderSpec) -> str:
    """Cache namespace of an encoder: backend, options and model identity (not its path)."""
    ident = identity(spec)
    model = {"content": ident["content"]} if "content" in ident else ident
    payload = {"backend": spec.backend, "modality": spec.modality, "options": spec.options,
               "model": model}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
