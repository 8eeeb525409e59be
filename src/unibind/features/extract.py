"""manifest -> features: the only stage that runs encoders in bulk.

Per modality: digest every item (file bytes or text), look it up in the content-addressed cache,
encode only the missing ones (in size-sorted batches, the next batch decoded in a background thread
while the current one runs), store each finished batch as one atomic cache shard, then write the
features folder. A bad item is reported (id, path, reason) and never stops the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from unibind.encoders import Encoder, EncoderSpec, ItemError, load_encoder, resolve_profile
from unibind.encoders.base import EncoderLoadError
from unibind.encoders.spec import HubRevisionError, fingerprint, identity, pin
from unibind.errors import UsageError
from unibind.features.cache import FeatureCache, file_digest, text_digest
from unibind.features.manifest import Manifest, read_manifest
from unibind.features.media import DEFAULT_LIMITS, MediaLimits
from unibind.features.store import VIEW_SEP, save_features
from unibind.modalities import get_modality
from unibind.util.runtime import cache_root

log = logging.getLogger(__name__)


@dataclass
class ModalityResult:
    spec: EncoderSpec
    fingerprint: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # item id -> vector
    computed: int = 0
    cached: int = 0
    dim: int | None = None


def _item_input(manifest: Manifest, row: pd.Series) -> str | Path:
    return get_modality(row["modality"]).item_input(row["text"], row["path"], manifest.resolve)


def _digest(modality: str, item: str | Path) -> str:
    return text_digest(item) if get_modality(modality).inline else file_digest(item)


def _size_key(modality: str, item: str | Path) -> int:
    return len(item) if get_modality(modality).inline else os.path.getsize(item)


def _error(row: pd.Series, reason: str) -> dict[str, str]:
    return {"id": row["id"], "modality": row["modality"], "path": row["path"], "reason": reason}


def _decode(encoder: Encoder, chunk: list[tuple[str, str, Any]]
            ) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str]]]:
    """Decode a chunk of (id, digest, input); returns (decoded, failures as (id, reason))."""
    ok, bad = [], []
    for item_id, digest, item in chunk:
        try:
            ok.append((item_id, digest, encoder.load(item)))
        except ItemError as exc:
            bad.append((item_id, exc.reason))
        except Exception as exc:  # any decoder failure is this item's error, never the run's
            bad.append((item_id, f"cannot decode: {type(exc).__name__}: {exc}"))
    return ok, bad


def _chunks(work: list[tuple[str, str, Any]], size: int) -> Iterator[list[tuple[str, str, Any]]]:
    for start in range(0, len(work), size):
        yield work[start:start + size]


def _encode_missing(encoder: Encoder, work: list[tuple[str, str, Any]], cache: FeatureCache,
                    batch_size: int, errors: dict[str, str]) -> dict[str, np.ndarray]:
    """Encode (id, digest, input) triples; every finished batch goes to the cache at once."""
    out: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(work), desc=f"extract {encoder.modality}", unit="item", leave=False)
    chunks = _chunks(work, batch_size)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_decode, encoder, next(chunks, []))
        while True:
            decoded, bad = pending.result()
            following = next(chunks, None)
            if following is not None:
                pending = pool.submit(_decode, encoder, following)
            errors.update(dict(bad))
            if decoded:
                out.update(_encode_batch(encoder, decoded, cache, errors))
            bar.update(len(decoded) + len(bad))
            if following is None:
                break
    bar.close()
    return out


def _encode_batch(encoder: Encoder, decoded: list[tuple[str, str, Any]], cache: FeatureCache,
                  errors: dict[str, str]) -> dict[str, np.ndarray]:
    try:
        vectors = encoder.encode_decoded([d for _, _, d in decoded], batch_size=len(decoded))
    except Exception as exc:  # isolate the culprit: retry one by one
        if len(decoded) == 1:
            errors[decoded[0][0]] = f"encoder failed: {type(exc).__name__}: {exc}"
            return {}
        out: dict[str, np.ndarray] = {}
        for one in decoded:
            out.update(_encode_batch(encoder, [one], cache, errors))
        return out
    bad = ~np.isfinite(vectors).all(axis=1)
    for (item_id, _, _), is_bad in zip(decoded, bad):
        if is_bad:
            errors[item_id] = "encoder produced NaN/inf"
    good = [(d, v) for d, v, b in zip(decoded, vectors, bad) if not b]
    cache.put_many({digest: vec for (_, digest, _), vec in good})
    return {item_id: vec for (item_id, _, _), vec in good}


def _extract_modality(manifest: Manifest, rows: pd.DataFrame, spec: EncoderSpec,
                      cache_dir: Path, batch_size: int, device: torch.device | None,
                      dtype: torch.dtype | None, errors: dict[str, str],
                      limits: MediaLimits = DEFAULT_LIMITS) -> ModalityResult:
    result = ModalityResult(spec=spec, fingerprint=fingerprint(spec))
    cache = FeatureCache(cache_dir, result.fingerprint)
    digests: dict[str, str] = {}
    work = []
    for _, row in rows.iterrows():
        try:
            item = _item_input(manifest, row)
            digest = _digest(row["modality"], item)
        except OSError as exc:
            errors[row["id"]] = f"unreadable: {exc.strerror or exc}"
            continue
        digests[row["id"]] = digest
        if digest not in cache:
            work.append((_size_key(row["modality"], item), row["id"], digest, item))
    todo = {w[1] for w in work}
    hits = cache.get_many(d for i, d in digests.items() if i not in todo)
    for item_id, digest in digests.items():
        if digest in hits:
            result.vectors[item_id] = hits[digest]
    result.cached = len(result.vectors)
    if work:
        log.info("%s: %d cached, %d to compute with %s", spec.modality, result.cached, len(work),
                 spec.source)
        try:
            encoder = load_encoder(spec, device=device, dtype=dtype)
        except OSError as exc:
            raise EncoderLoadError(
                f"cannot load the {spec.modality} encoder {spec.source!r}: {exc}\n"
                f"Without the Hugging Face hub, use --profile offline, or a local "
                f"model folder (--{spec.modality}-encoder DIR).") from exc
        encoder.limits = limits
        cache.describe({"spec": spec.to_dict(), "identity": encoder.identity, "dim": encoder.dim})
        work.sort(key=lambda w: -w[0])  # similar sizes batch together, big ones first
        new = _encode_missing(encoder, [w[1:] for w in work], cache, batch_size, errors)
        result.vectors.update(new)
        result.computed = len(new)
        result.dim = encoder.dim
        cache.compact()
    elif result.vectors:
        log.info("%s: all %d items cached, encoder not loaded", spec.modality, result.cached)
    if result.dim is None and result.vectors:
        result.dim = int(next(iter(result.vectors.values())).shape[0])
    return result


def _encoder_entry(r: ModalityResult) -> dict[str, Any]:
    return {"spec": r.spec.to_dict(), "identity": identity(r.spec), "fingerprint": r.fingerprint,
            "dim": r.dim}


def extract(manifest_path: str | os.PathLike, out: str | os.PathLike, profile: str = "seed",
            overrides: dict[str, str | None] | None = None,
            cache_dir: str | os.PathLike | None = None, batch_size: int = 32,
            device: torch.device | None = None, dtype: torch.dtype | None = None,
            limits: MediaLimits = DEFAULT_LIMITS, allow_outside: bool = False
            ) -> dict[str, Any]:
    """Embed every item of the manifest; write the features folder ``out``; return a summary
    ``{"out", "profile", "modalities": {m: {computed, cached, dim, encoder}}, "errors": [...]}``.

    ``limits``: the largest image (pixels) and audio (seconds) decoded; bigger items fail alone.
    ``allow_outside``: accept manifest paths outside its folder (``..``, absolute)."""
    manifest_path = Path(manifest_path)
    specs = resolve_profile(profile, overrides)
    manifest = read_manifest(manifest_path, check_files=False,  # missing files: item errors
                             allow_outside=allow_outside)
    if lacking := [m for m in manifest.modalities() if m not in specs]:
        raise UsageError(f"profile {profile!r} has no encoder for {', '.join(lacking)}; "
                         "give one in overrides (or register the modality's default_encoder)")
    cache_dir = Path(cache_dir) if cache_dir else cache_root() / "features"
    table = manifest.table
    errors: dict[str, str] = {}
    results: dict[str, ModalityResult] = {}
    views = {m: [k for k in specs if k.startswith(m + VIEW_SEP)] for m in manifest.modalities()}
    for modality in manifest.modalities():
        rows = table[table["modality"] == modality]
        for key in [modality, *views[modality]]:  # views: a second encoder of the same items
            try:  # a hub id -> its commit, once, before any download
                spec = pin(specs[key])
            except HubRevisionError as exc:
                raise HubRevisionError(f"cannot load the {key} encoder "
                                       f"{specs[key].source!r}: {exc}") from exc
            results[key] = _extract_modality(manifest, rows, spec, cache_dir,
                                             batch_size, device, dtype, errors, limits)
    items, arrays = [], {}
    for modality in manifest.modalities():
        keys = [modality, *views[modality]]
        done = set.intersection(*(set(results[k].vectors) for k in keys))
        rows = table[(table["modality"] == modality) & table["id"].isin(done)]
        if not len(rows):
            continue
        rows = rows.assign(row=np.arange(len(rows)))
        for key in keys:
            arrays[key] = np.stack([results[key].vectors[i] for i in rows["id"]]
                                   ).astype(np.float32)
        items.append(rows)
    error_rows = [_error(row, errors[row["id"]]) for _, row in table.iterrows()
                  if row["id"] in errors]
    meta = {
        "manifest": os.path.relpath(manifest_path.resolve(), Path(out).resolve()),
        "manifest_digest": manifest.digest(),
        **({"allow_outside_paths": True} if allow_outside else {}),
        "profile": profile,
        "encoders": {m: _encoder_entry(r) for m, r in results.items() if VIEW_SEP not in m},
        "views": {k: _encoder_entry(r) for k, r in results.items() if VIEW_SEP in k},
        "counts": {m: int(a.shape[0]) for m, a in arrays.items() if VIEW_SEP not in m},
    }
    all_items = pd.concat(items, ignore_index=True) if items else table.head(0).assign(row=0)
    save_features(out, all_items, arrays, meta, error_rows)
    if error_rows:
        log.warning("%d item(s) failed; see %s", len(error_rows), Path(out) / "errors.jsonl")
    return {"out": str(out), "profile": profile,
            "modalities": {m: {"computed": r.computed, "cached": r.cached, "dim": r.dim,
                               "encoder": r.spec.source} for m, r in results.items()},
            "errors": [{"id": e["id"], "path": e["path"], "reason": e["reason"]}
                       for e in error_rows]}
