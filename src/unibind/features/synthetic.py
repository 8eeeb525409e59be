"""Synthetic class-structured features per modality (tests, benchmarks, demos without media).

Each class ``c`` has a latent prototype ``z_c``; each group (one caption, one image and one sound
of the same thing, as the reference pairs them) draws ``z_g = z_c + group_noise * eps``; an item of
modality ``m`` is ``A_m z_g + offset_m + noise_m * eps`` with a random linear map ``A_m`` and a
per-modality offset (so a modality gap exists). Text is the least noisy modality by default, which
makes raw mixed searches favour text the way the reference's did.

The generator is a pure function of ``SyntheticSpec``; the spec is stored in the features meta
(``meta["synthetic"]``), with the text features of each class prompt (``meta["class_prompts"]``,
the noiseless caption of each class, ``label_vectors``) that zero-shot evaluation reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from unibind.errors import UsageError
from unibind.features.folder import Features
from unibind.modalities import MODALITIES
from unibind.util.jsonio import from_dict, to_dict


def _default_dims() -> dict[str, int]:
    return {"text": 64, "image": 96, "audio": 48}


def _default_noise() -> dict[str, float]:
    return {"text": 0.4, "image": 0.8, "audio": 1.0}


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic feature set (all sizes per modality)."""

    n_classes: int = 10
    groups_per_class: int = 40
    dims: dict[str, int] = field(default_factory=_default_dims)
    latent: int = 16
    group_noise: float = 0.5
    noise: dict[str, float] = field(default_factory=_default_noise)
    offset: float = 4.0
    missing: dict[str, float] = field(default_factory=dict)  # fraction of groups lacking m
    seed: int = 0


def _rng(spec: SyntheticSpec, what: str) -> np.random.Generator:
    key = hashlib.sha256(f"{spec.seed}:{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


def _maps(spec: SyntheticSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per modality: linear map ``A_m [latent, d_m]`` and offset ``[d_m]``."""
    out = {}
    for m, d in spec.dims.items():
        rng = _rng(spec, f"map:{m}")
        a = rng.standard_normal((spec.latent, d)) / np.sqrt(spec.latent)
        off = rng.standard_normal(d)
        out[m] = (a, spec.offset * off / np.linalg.norm(off) * np.sqrt(d / spec.latent))
    return out


def _prototypes(spec: SyntheticSpec) -> np.ndarray:
    return _rng(spec, "classes").standard_normal((spec.n_classes, spec.latent))


def class_names(spec: SyntheticSpec) -> list[str]:
    """The synthetic classes' names: ``class000``, ``class001`` ..."""
    return [f"class{c:03d}" for c in range(spec.n_classes)]


def generate(spec: SyntheticSpec | None = None) -> Features:
    """An in-memory ``Features`` with ``n_classes * groups_per_class`` groups (triplets)."""
    spec = spec or SyntheticSpec()
    unknown = sorted(set(spec.dims) - set(MODALITIES))
    if unknown:
        raise UsageError(f"unknown modalities {unknown}; expected {list(MODALITIES)}")
    protos = _prototypes(spec)
    n_groups = spec.n_classes * spec.groups_per_class
    group_class = np.repeat(np.arange(spec.n_classes), spec.groups_per_class)
    z = protos[group_class] + spec.group_noise * _rng(spec, "groups").standard_normal(
        (n_groups, spec.latent))
    names = np.array(class_names(spec))
    group_ids = np.array([f"g{g:06d}" for g in range(n_groups)])
    arrays, tables = {}, []
    for m, (a, off) in _maps(spec).items():
        rng = _rng(spec, f"items:{m}")
        keep = rng.random(n_groups) >= spec.missing.get(m, 0.0)
        zg = z[keep]
        x = zg @ a + off + spec.noise.get(m, 1.0) * rng.standard_normal((len(zg), a.shape[1]))
        arrays[m] = x.astype(np.float32)
        n = len(zg)
        tables.append(pd.DataFrame({
            "id": [f"{m}/{g}" for g in group_ids[keep]], "modality": m,
            "label": names[group_class[keep]], "group": group_ids[keep], "split": "",
            "path": "", "text": "", "row": np.arange(n)}))
    items = pd.concat(tables, ignore_index=True)
    return Features(items=items, arrays=arrays, meta=synthetic_meta(spec))


def synthetic_meta(spec: SyntheticSpec) -> dict[str, Any]:
    """Features meta: pseudo encoder entries (so runs record them) plus the spec itself."""
    sdict = to_dict(spec)
    fp = hashlib.sha256(json.dumps(sdict, sort_keys=True).encode()).hexdigest()[:16]
    encoders = {m: {"spec": {"modality": m, "backend": "synthetic", "source": f"synthetic-{m}",
                             "revision": "", "options": {}},
                    "identity": {"synthetic": sdict}, "fingerprint": f"synthetic-{m}-{fp}",
                    "dim": int(d)} for m, d in spec.dims.items()}
    meta: dict[str, Any] = {"encoders": encoders, "synthetic": sdict}
    if "text" in spec.dims:
        names, vecs = label_vectors(spec)
        meta["class_prompts"] = {"names": names, "features": vecs.astype(float).tolist()}
    return meta


def spec_from_meta(meta: dict[str, Any]) -> SyntheticSpec | None:
    """The ``SyntheticSpec`` recorded in features metadata, or None for real features."""
    data = meta.get("synthetic")
    return None if not data else from_dict(SyntheticSpec, data)


def label_vectors(spec: SyntheticSpec) -> tuple[list[str], np.ndarray]:
    """Class prompt vectors in text-feature space (the noiseless caption of each class)."""
    if "text" not in spec.dims:
        raise UsageError("synthetic spec has no text modality; no class prompts to embed")
    a, off = _maps(spec)["text"]
    return class_names(spec), (_prototypes(spec) @ a + off).astype(np.float32)
