"""manifest -> features: the only stage that runs encoders in bulk.

Per modality: digest every item (file bytes or text), look it up in the content-addressed cache,
plan the missing ones into size-sorted batches and hand them to an engine (``local``: worker
threads decode while the caller runs the model, see local_engine.py; ``ray``: a Ray Data
pipeline, see ray_engine.py). Both run the same per-batch work (work.py) and store each finished
batch as one atomic cache shard; then the features folder is written. A bad item is reported
(id, path, reason) and never stops the others.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unibind.data.manifest import Manifest, read_manifest
from unibind.encoders import EncoderSpec, load_encoder, resolve_profile
from unibind.encoders.spec import HubRevisionError, fingerprint, identity, pin
from unibind.errors import Interrupted, UsageError
from unibind.features import local_engine, work
from unibind.features.cache import FeatureCache, text_digest
from unibind.features.folder import VIEW_SEP, save_features
from unibind.media.decode import DEFAULT_LIMITS, MediaLimits
from unibind.modalities import get_modality
from unibind.util.digests import file_digest
from unibind.util.runtime import cache_root, pick_device, pick_dtype

ENGINES = ("local", "ray")
DEFAULT_BATCH = 32  # --batch-size auto off CUDA
DEVICE_PREPROCESS = ("hf-clip", "hf-clap")  # backends with a `preprocess: device` option

log = logging.getLogger(__name__)


@dataclass
class ModalityResult:
    spec: EncoderSpec
    fingerprint: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # item id -> vector
    computed: int = 0
    cached: int = 0
    dim: int | None = None
    batches: int = 0  # batches computed (each one cache shard)


def _item_input(manifest: Manifest, row: pd.Series) -> str | Path:
    return get_modality(row["modality"]).item_input(row["text"], row["path"], manifest.resolve)


def _digest(modality: str, item: str | Path) -> str:
    return text_digest(item) if get_modality(modality).inline else file_digest(item)


def _size_key(modality: str, item: str | Path) -> int:
    return len(item) if get_modality(modality).inline else os.path.getsize(item)


def _error(row: pd.Series, reason: str) -> dict[str, str]:
    return {"id": row["id"], "modality": row["modality"], "path": row["path"], "reason": reason}


@dataclass
class Options:
    """How to run extraction (where, how wide, how big a batch); never changes results except
    ``batch_size`` on padded text (within float noise)."""

    batch_size: int | str = "auto"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    workers: int | None = None
    engine: str = "local"
    address: str | None = None
    device_request: str | None = None  # as asked ("auto", "cuda:1" ...): for remote workers
    dtype_request: str | None = None
    limits: MediaLimits = DEFAULT_LIMITS
    runtime: str = "auto"  # torch, onnx (ONNX Runtime) or auto (onnx on the CPU where faithful)


def _load(spec: EncoderSpec, opts: Options):
    encoder = load_encoder(spec, device=opts.device, dtype=opts.dtype, runtime=opts.runtime)
    encoder.limits = opts.limits
    return encoder


def _batch_size(encoder, first: work.WorkItem, opts: Options) -> int:
    """An explicit size, else on CUDA the largest that fits (probed on the largest item)."""
    if opts.batch_size != "auto":
        return int(opts.batch_size)
    if opts.device.type != "cuda":
        return DEFAULT_BATCH
    sample = work.prepare_batch(encoder, [first]).decoded
    size = work.probe_batch_size(encoder, sample[0]) if sample else DEFAULT_BATCH
    log.info("%s: batch size auto -> %d", encoder.modality, size)
    return size


def _extract_modality(manifest: Manifest, rows: pd.DataFrame, spec: EncoderSpec,
                      cache_dir: Path, opts: Options, errors: dict[str, str]) -> ModalityResult:
    result = ModalityResult(spec=spec, fingerprint=fingerprint(spec))
    cache = FeatureCache(cache_dir, result.fingerprint)
    digests: dict[str, str] = {}
    work_items = []
    for _, row in rows.iterrows():
        try:
            item = _item_input(manifest, row)
            digest = _digest(row["modality"], item)
        except OSError as exc:
            errors[row["id"]] = f"unreadable: {exc.strerror or exc}"
            continue
        digests[row["id"]] = digest
        if digest not in cache:
            work_items.append((_size_key(row["modality"], item), row["id"], digest, item))
    todo = {w[1] for w in work_items}
    hits = cache.get_many(d for i, d in digests.items() if i not in todo)
    for item_id, digest in digests.items():
        if digest in hits:
            result.vectors[item_id] = hits[digest]
    result.cached = len(result.vectors)
    if work_items:
        log.info("%s: %d cached, %d to compute with %s (%s engine)", spec.modality,
                 result.cached, len(work_items), spec.source, opts.engine)
        work_items.sort(key=lambda w: -w[0])  # similar sizes batch together, big ones first
        planned = [w[1:] for w in work_items]
        if opts.engine == "ray":
            from unibind.features import ray_engine

            size = DEFAULT_BATCH if opts.batch_size == "auto" else int(opts.batch_size)
            plan = work.plan_batches(planned, size)
            new, failed = ray_engine.encode_ray(spec, plan, cache_dir, result.fingerprint, opts)
            result.batches = len(plan)
            cache = FeatureCache(cache_dir, result.fingerprint)  # shards written by actors
            if new:
                result.dim = int(next(iter(new.values())).shape[0])
                cache.describe({"spec": spec.to_dict(), "identity": identity(spec),
                                "dim": result.dim})
        else:
            encoder = _load(spec, opts)
            cache.describe({"spec": spec.to_dict(), "identity": encoder.identity,
                            "dim": encoder.dim})
            size = _batch_size(encoder, planned[0], opts)
            plan = work.plan_batches(planned, size)
            new, failed = local_engine.encode_local(encoder, plan, cache, opts.workers)
            result.batches = len(plan)
            result.dim = encoder.dim
        errors.update(failed)
        result.vectors.update(new)
        result.computed = len(new)
        cache.compact()
    elif result.vectors:
        log.info("%s: all %d items cached, encoder not loaded", spec.modality, result.cached)
    if result.dim is None and result.vectors:
        result.dim = int(next(iter(result.vectors.values())).shape[0])
    return result


def _encoder_entry(r: ModalityResult) -> dict[str, Any]:
    return {"spec": r.spec.to_dict(), "identity": identity(r.spec), "fingerprint": r.fingerprint,
            "dim": r.dim}


def _with_preprocess(spec: EncoderSpec, preprocess: str) -> EncoderSpec:
    if preprocess == "host" or spec.backend not in DEVICE_PREPROCESS:
        return spec
    return replace(spec, options={**spec.options, "preprocess": preprocess})


def extract(manifest_path: str | os.PathLike, out: str | os.PathLike, profile: str = "seed",
            overrides: dict[str, str | None] | None = None,
            cache_dir: str | os.PathLike | None = None, batch_size: int | str = "auto",
            device: torch.device | str | None = None, dtype: torch.dtype | str | None = None,
            workers: int | None = None, engine: str = "local", address: str | None = None,
            preprocess: str = "host", limits: MediaLimits = DEFAULT_LIMITS,
            allow_outside: bool = False, runtime: str = "auto",
            quantize: str | None = None) -> dict[str, Any]:
    """Embed every item of the manifest; write the features folder ``out``; return a summary
    ``{"out", "profile", "modalities": {m: {computed, cached, dim, encoder}}, "errors": [...]}``.

    ``device``/``dtype`` default to auto (cuda > mps > cpu; bf16 where the GPU has it, else
    fp16; fp32 off CUDA). ``batch_size`` "auto": the largest that fits on CUDA, else 32.
    ``workers``: decode threads (default: the machine's cores). ``engine``: "local" or "ray"
    (``address`` of the Ray cluster; default: start or join a local one). ``preprocess``:
    "device" resizes images / computes CLAP log-mels on the model's device.
    ``limits``: the largest image (pixels) and audio (seconds) decoded; bigger items fail alone.
    ``allow_outside``: accept manifest paths outside its folder (``..``, absolute).
    ``runtime``: "auto" (ONNX Runtime on the CPU for backends that export faithfully, torch on
    CUDA), "torch" or "onnx"; fp32 vectors of both runtimes agree within the verified tolerance
    and share cache entries. ``quantize``: "int8" runs dynamically quantized graphs (their own
    fingerprint and cache entries)."""
    from unibind.encoders.onnx_runtime import check_runtime, with_quantize

    check_runtime(runtime, quantize)
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if preprocess not in ("host", "device"):
        raise UsageError(f"preprocess must be 'host' or 'device', not {preprocess!r}")
    if batch_size != "auto" and (not str(batch_size).isdigit() or int(batch_size) < 1):
        raise UsageError(f"batch size must be 'auto' or a positive integer, not {batch_size!r}")
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    opts = Options(batch_size=batch_size, device=dev, workers=workers, engine=engine,
                   address=address, device_request=None if device is None else str(device),
                   dtype_request=None if dtype is None else str(dtype).removeprefix("torch."),
                   dtype=dtype if isinstance(dtype, torch.dtype) else pick_dtype(dev, dtype),
                   limits=limits, runtime=runtime)
    manifest_path = Path(manifest_path)
    specs = {m: with_quantize(_with_preprocess(s, preprocess), quantize)
             for m, s in resolve_profile(profile, overrides).items()}
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
            try:
                results[key] = _extract_modality(manifest, rows, spec, cache_dir, opts, errors)
            except Interrupted as exc:  # count the batches of the modalities already done
                raise Interrupted(exc.batches + sum(r.batches for r in results.values())
                                  ) from None
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
