"""A trained run on disk: heads (safetensors) + run.json (config, encoders, provenance).

Layout of a run folder::

    run.json             heads config, training config, encoder specs/identities, features path,
                         data digest, training curve, head digest
    heads.safetensors    state dict of ``Heads`` (+ optional ``center.<modality>`` vectors)

Later stages (evaluate, index, search, plot, report) read runs only through this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from unibind.errors import InputNotFound, UnibindError, UsageError, unknown
from unibind.features.folder import Features, load_features, resolve_encoder_sources
from unibind.features.splits import SPLITS, check_split
from unibind.modalities import check_modality, get_modality, ordered
from unibind.run.embed import Embedded, embed_items, project
from unibind.run.heads import Heads, HeadsConfig
from unibind.util.atomic import atomic_folder
from unibind.util.digests import sha256_file
from unibind.util.jsonio import from_dict, read_artifact_meta, to_dict, write_json_atomic

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
    _encoders: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Run:
        path = Path(path)
        info = read_artifact_meta(path, ["run.json", "heads.safetensors"], RunError, "a run",
                                  "create one with `unibind train` or `unibind bind`")
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
    def reach(self) -> dict[str, list[str]]:
        """``{query modality: [target modalities its queries can find]}`` (``run.json``
        ``reach``): all-to-all for trained runs; a bound run's modalities with no text side
        reach only themselves (see ``unibind.binding.layout``)."""
        recorded = self.info.get("reach")
        if not recorded:
            return all_to_all(self.modalities)
        return {q: list(t) for q, t in recorded.items()}

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
        if not isinstance(features, Features):
            if features is None and self.features_path is None:
                raise RunError(f"run {self.path} records no features folder; pass one")
            features = load_features(features if features is not None else self.features_path)
        # a bound run reads text from a view; a collection without text items has none
        return features.with_views({m: v for m, v in self.views.items()
                                    if m in features.modalities})

    @property
    def views(self) -> dict[str, str]:
        """``{modality: view}`` the heads read (e.g. ``{"text": "clip"}``); empty: the main."""
        return dict(self.info.get("views") or {})

    @property
    def head_digest(self) -> str:
        return self.info["head_digest"]

    def split_mask(self, feats: Features, split: str, *, allow_split_mismatch: bool = False
                   ) -> np.ndarray:
        """Items of ``split`` ("train", "val", "test" or "all") under the run's split recipe.

        The split is recomputed from the parameters stored in run.json; features that no longer
        give the same split (a possible train/test leak) raise ``SplitError``, from disk or in
        memory alike, unless ``allow_split_mismatch`` (then a warning)."""
        if split == "all":
            return np.ones(len(feats.items), dtype=bool)
        if split not in SPLITS:
            raise unknown("split", split, [*SPLITS, "all"])
        info = self.info.get("split") or {}
        if not info:
            raise RunError(f"run {self.path} stores no split information")
        assigned = check_split(feats.items, info, strict=not allow_split_mismatch,
                               what=f"run {self.path}",
                               hint="; pass allow_split_mismatch=True (--allow-split-mismatch) "
                                    "to use them anyway")
        return (assigned == split).to_numpy()

    def project(self, modality: str, x: np.ndarray, center: bool = False) -> np.ndarray:
        """Encoder features ``[n, d_m]`` -> unit vectors ``[n, D]`` (float32).

        ``center=True`` subtracts the modality's training mean (stored with the run) and
        re-normalises, which closes the modality gap for mixed searches."""
        if modality not in self.modalities:
            raise RunError(f"run {self.path} has no {modality} head (it has "
                           f"{', '.join(self.modalities)})")
        centers = self._centers([modality], center)
        return project(self.heads, modality, x, None if centers is None else centers[modality])

    def encode(self, items: Sequence[Any], modality: str, *, batch_size: int = 32,
               progress: bool = False, center: bool | None = None) -> np.ndarray:
        """Raw inputs (texts, or file paths for media) -> unit vectors ``[n, D]`` in the run's
        space, through the run's own encoder and head; no index needed.

        ``center``: subtract the modality's training centre (default: as the run's index is
        built, ``search_center``), so the vectors equal ``Space.embed``'s on the default index.
        ``progress``: a progress bar over batches. The encoder is loaded once per run object."""
        check_modality(modality)
        if modality not in self.modalities:
            raise RunError(f"run {self.path} has no {modality} head (it has "
                           f"{', '.join(self.modalities)})")
        if isinstance(items, (str, os.PathLike)):
            raise UsageError(f"encode takes a list of {modality} inputs, not one "
                             f"{type(items).__name__}: wrap it in a list")
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}")
        items = [str(x) for x in items]
        if not get_modality(modality).inline:
            missing = [x for x in items if not Path(x).is_file()]
            if missing:
                raise InputNotFound(f"{modality} file(s) not found: {', '.join(missing[:5])}")
        encoder = self._encoder(modality)
        feats = np.empty((len(items), encoder.dim), dtype=np.float32)
        starts = range(0, len(items), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"encode {modality}", unit="batch")
        for start in starts:
            feats[start:start + batch_size] = encoder.encode(items[start:start + batch_size],
                                                             batch_size=batch_size)
        return self.project(modality, feats,
                            center=self.search_center if center is None else center)

    def _encoder(self, modality: str) -> Any:
        from unibind.encoders import load_encoder

        if modality not in self._encoders:
            info = self.encoders.get(modality) or {}
            if "spec" not in info:
                raise RunError(f"run {self.path} records no {modality} encoder")
            encoder = load_encoder(info["spec"])
            want = info.get("fingerprint")
            if want and encoder.fingerprint != want:
                raise RunError(f"{modality} encoder {info['spec'].get('source')} has fingerprint "
                               f"{encoder.fingerprint}, but run {self.path} was made with {want}:"
                               " the model files changed; restore them or rebuild the run")
            self._encoders[modality] = encoder
        return self._encoders[modality]

    def _centers(self, modalities: list[str], center: bool) -> dict[str, np.ndarray] | None:
        if not center:
            return None
        missing = [m for m in modalities if m not in self.centers]
        if missing:
            raise RunError(f"run {self.path} stores no centre for {', '.join(missing)}")
        return self.centers

    def embed(self, data: Features | str | os.PathLike | Mapping[str, np.ndarray] | None = None,
              *, split: str | None = None, mask: np.ndarray | None = None,
              allow_split_mismatch: bool = False, center: bool = False,
              max_per_modality: int = 0, seed: int = 0) -> Embedded:
        """Unit vectors of items in the run's space.

        ``data``: a features set (a folder, ``Features``, or ``None``: the features the run was
        trained on), or raw encoder features ``{modality: [n, d_m]}``. For features sets:
        ``split`` (see ``split_mask``) and/or a boolean ``mask`` over ``items`` select items,
        ``max_per_modality`` subsamples each modality (``seed``). ``center``: subtract the
        run's per-modality training centres and re-normalise."""
        if isinstance(data, Mapping):
            if split is not None or mask is not None or max_per_modality:
                raise UsageError("split, mask and max_per_modality select items of a features "
                                 "set; raw arrays are embedded whole")
            vectors = {m: self.project(m, x, center=center) for m, x in data.items()}
            items = pd.DataFrame({"modality": [m for m, v in vectors.items() for _ in v],
                                  "row": [i for v in vectors.values() for i in range(len(v))]})
            return Embedded(items=items, vectors=vectors)
        # a folder (or None) is read through load_features (views applied); a Features object
        # is taken as given (e.g. items extracted with the run's own encoders)
        feats = data if isinstance(data, Features) else self.load_features(data)
        shared = [m for m in feats.modalities if m in self.modalities]
        if split is not None:
            pick = self.split_mask(feats, split, allow_split_mismatch=allow_split_mismatch)
            mask = pick if mask is None else pick & np.asarray(mask, dtype=bool)
        out = embed_items(self.heads, feats, mask, max_per_modality, seed,
                          self._centers(shared, center))
        if not out.vectors:
            which = f"{split} " if split else ""
            raise RunError(f"no {which}items of a modality the run has heads for (run: "
                           f"{', '.join(self.modalities)}; features: "
                           f"{', '.join(feats.modalities) or 'none'})")
        return out


def all_to_all(modalities: Sequence[str]) -> dict[str, list[str]]:
    """The reach of a trained run: every head's queries reach every head's items."""
    names = ordered(modalities)
    return {m: list(names) for m in names}


def encode(run: Run | str | os.PathLike, items: Sequence[Any], modality: str,
           **options: Any) -> np.ndarray:
    """``Run.encode`` on a run or a run folder: unit vectors of raw inputs in its space."""
    return (run if isinstance(run, Run) else Run.load(run)).encode(items, modality, **options)


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
        info = {"format": FORMAT, **info, "reach": info.get("reach") or
                all_to_all(heads.modalities), "heads": to_dict(heads.cfg),
                "head_digest": sha256_file(tmp / "heads.safetensors")}
        write_json_atomic(tmp / "run.json", info)
    return path
