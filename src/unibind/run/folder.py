"""A trained run on disk: heads (safetensors) + run.json (config, encoders, provenance).

Layout of a run folder::

    run.json             heads config, training config, encoder specs/identities, features path,
                         data digest, training curve, head digest
    heads.safetensors    state dict of ``Heads`` (+ optional ``center.<modality>`` vectors)

Later stages (evaluate, index, search, plot, report) read runs only through this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from unibind.errors import UnibindError
from unibind.features.store import Features, load_features, resolve_encoder_sources
from unibind.run.heads import Heads, HeadsConfig
from unibind.util.atomic import atomic_folder, recover_folder
from unibind.util.digests import sha256_file
from unibind.util.jsonio import from_dict, read_json, to_dict, write_json_atomic

CENTER_PREFIX = "center."
FORMAT = 1  # run.json "format"; runs written before the field existed are format 1


class RunError(UnibindError, ValueError):
    """A run folder that is missing or inconsistent."""


@dataclass
class Run:
    """Trained heads plus everything needed to embed new inputs the same way."""

    path: Path
    heads: Heads
    info: dict[str, Any]
    centers: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Run:
        path = Path(path)
        recover_folder(path)
        if not (path / "run.json").is_file() or not (path / "heads.safetensors").is_file():
            raise RunError(f"{path} is not a run folder (needs run.json and heads.safetensors); "
                           "create one with `unibind train`")
        try:
            info = read_json(path / "run.json")
        except ValueError as exc:
            raise RunError(f"damaged run folder: {exc}") from exc
        if info.get("format", 1) != FORMAT:
            raise RunError(f"{path}: run format {info.get('format')!r} != {FORMAT} (written by "
                           "another unibind version); retrain with `unibind train`")
        try:
            heads = Heads(from_dict(HeadsConfig, info["heads"]))
            state = load_file(str(path / "heads.safetensors"))
            centers = {k[len(CENTER_PREFIX):]: v.numpy() for k, v in state.items()
                       if k.startswith(CENTER_PREFIX)}
            heads.load_state_dict({k: v for k, v in state.items()
                                   if not k.startswith(CENTER_PREFIX)})
        except Exception as exc:  # truncated/foreign weights, missing keys: not a traceback
            raise RunError(f"{path}: damaged run folder ({type(exc).__name__}: {exc}); "
                           "retrain with `unibind train`") from exc
        heads.eval()
        return cls(path=path, heads=heads, info=info, centers=centers)

    @property
    def modalities(self) -> list[str]:
        return self.heads.modalities

    @property
    def embed_dim(self) -> int:
        return self.heads.cfg.embed_dim

    @property
    def encoders(self) -> dict[str, dict[str, Any]]:
        """Per modality: the encoder spec and identity the heads were trained on (sources of
        encoders stored inside the run resolved against its folder)."""
        return resolve_encoder_sources(self.info.get("encoders", {}), self.path)

    @property
    def features_path(self) -> Path | None:
        p = self.info.get("features")
        return None if not p else (self.path / p).resolve()

    @property
    def search_center(self) -> bool:
        """Whether the run's recommended search centres embeddings (and it stores centres)."""
        return bool(self.info.get("search", {}).get("center")) and bool(self.centers)

    def load_features(self, features: Features | str | os.PathLike | None = None) -> Features:
        """``features`` (a folder or Features), else the features the run was trained on; a
        modality the run reads from a view (``run.json`` ``views``, e.g. text@clip) gets it."""
        if isinstance(features, Features):
            return features.with_views(self.views)
        if features is None:
            if self.features_path is None:
                raise RunError(f"run {self.path} records no features folder; pass one")
            features = self.features_path
        return load_features(features).with_views(self.views)

    @property
    def views(self) -> dict[str, str]:
        """``{modality: view}`` the heads read (e.g. ``{"text": "clip"}``); empty: the main."""
        return dict(self.info.get("views") or {})

    @property
    def head_digest(self) -> str:
        return self.info["head_digest"]

    @torch.no_grad()
    def project(self, modality: str, x: np.ndarray, center: bool = False,
                batch: int = 65536) -> np.ndarray:
        """Encoder features ``[n, d_m]`` -> unit vectors ``[n, D]`` (float32).

        ``center=True`` subtracts the modality's training mean (stored with the run) and
        re-normalises, which closes the modality gap for mixed searches."""
        x = np.asarray(x, dtype=np.float32)
        out = np.empty((x.shape[0], self.embed_dim), dtype=np.float32)
        for start in range(0, x.shape[0], batch):
            out[start:start + batch] = self.heads.embed(
                modality, torch.from_numpy(x[start:start + batch])).numpy()
        if center:
            if modality not in self.centers:
                raise RunError(f"run {self.path} stores no centre for {modality!r}")
            out -= self.centers[modality]
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def save_run(path: str | os.PathLike, heads: Heads, info: dict[str, Any],
             centers: dict[str, np.ndarray] | None = None,
             extra: Callable[[Path], dict[str, Any]] | None = None) -> Path:
    """Write heads + run.json atomically; ``info`` gains ``heads`` and ``head_digest``.

    ``extra(staging_folder)`` may write more files into the run (fine-tuned encoders, their
    features) before it is swapped in; the dict it returns is merged into ``info``."""
    path = Path(path)
    with atomic_folder(path) as tmp:
        if extra is not None:
            info = {**info, **extra(tmp)}
        state = {k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()}
        for m, vec in (centers or {}).items():
            state[CENTER_PREFIX + m] = torch.as_tensor(np.asarray(vec, dtype=np.float32))
        save_file(state, str(tmp / "heads.safetensors"))
        info = {"format": FORMAT, **info, "heads": to_dict(heads.cfg),
                "head_digest": sha256_file(tmp / "heads.safetensors")}
        write_json_atomic(tmp / "run.json", info)
    return path
