"""Per-batch extraction work, shared by every engine (local threads, Ray); only scheduling differs.

A batch goes through three steps:

1. ``prepare_batch`` (CPU, no model needed beyond the preprocessor; runs in worker threads or
   Ray tasks): decode every item, collate the good ones into one host batch (tokenised text,
   stacked pixels, log-mels), pinned when the model is on CUDA. Bad items become (id, reason).
2. ``run_batch`` (where the model is): forward, drop non-finite rows, write the finished batch
   as one atomic cache shard. An encoder failure is isolated by retrying item by item.
3. the engine collects ``{id: vector}`` and ``{id: reason}``: keyed by item id, order-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from unibind.encoders import Encoder, ItemError
from unibind.features.cache import FeatureCache

WorkItem = tuple[str, str, Any]  # (item id, content digest, input: text or path)


@dataclass
class Prepared:
    """One batch, decoded and collated on the host."""

    ids: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    decoded: list[Any] = field(default_factory=list)
    batch: Any = None
    bad: dict[str, str] = field(default_factory=dict)  # item id -> reason


def plan_batches(work: Sequence[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Consecutive chunks of ``batch_size`` (the caller sorts ``work`` by size first)."""
    return [list(work[s:s + batch_size]) for s in range(0, len(work), batch_size)]


def pin(batch: Any) -> Any:
    """Page-locked copies of every CPU tensor in ``batch`` (for non-blocking H2D copies)."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, dict):
        return {k: pin(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(pin(v) for v in batch)
    return batch


def prepare_batch(encoder: Encoder, chunk: Sequence[WorkItem], pin_memory: bool = False
                  ) -> Prepared:
    """Decode + collate one chunk; never raises for a bad item."""
    out = Prepared()
    for item_id, digest, item in chunk:
        try:
            decoded = encoder.load(item)
        except ItemError as exc:
            out.bad[item_id] = exc.reason
            continue
        except Exception as exc:  # any decoder failure is this item's error, never the run's
            out.bad[item_id] = f"cannot decode: {type(exc).__name__}: {exc}"
            continue
        out.ids.append(item_id)
        out.digests.append(digest)
        out.decoded.append(decoded)
    if out.decoded:
        out.batch = encoder.collate(out.decoded)
        if pin_memory:
            out.batch = pin(out.batch)
    return out


@torch.inference_mode()
def run_batch(encoder: Encoder, prepared: Prepared, cache: FeatureCache
              ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Forward one prepared batch and store it as one cache shard; (vectors, errors) by id."""
    if not prepared.ids:
        return {}, {}
    try:
        vectors = encoder.infer(prepared.batch)
    except Exception as exc:  # isolate the culprit: retry one by one
        if len(prepared.ids) == 1:
            return {}, {prepared.ids[0]: f"encoder failed: {type(exc).__name__}: {exc}"}
        out: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        for i, d, x in zip(prepared.ids, prepared.digests, prepared.decoded):
            one = Prepared([i], [d], [x], encoder.collate([x]))
            vecs, errs = run_batch(encoder, one, cache)
            out.update(vecs)
            errors.update(errs)
        return out, errors
    finite = np.isfinite(vectors).all(axis=1)
    errors = {i: "encoder produced NaN/inf" for i, ok in zip(prepared.ids, finite) if not ok}
    good = [(i, d, v) for i, d, v, ok in zip(prepared.ids, prepared.digests, vectors, finite)
            if ok]
    cache.put_many({d: v for _, d, v in good})
    return {i: v for i, _, v in good}, errors


def largest_fitting(fits: Callable[[int], bool], start: int = 8, cap: int = 1024) -> int:
    """The largest power-of-two multiple of ``start`` up to ``cap`` for which ``fits`` holds
    (``start`` itself when even that fails: the run then reports the real error)."""
    best, size = start, start
    while size <= cap and fits(size):
        best, size = size, size * 2
    return best


def probe_batch_size(encoder: Encoder, sample: Any, cap: int = 1024) -> int:
    """The largest batch of copies of ``sample`` (a decoded item; pass the largest) whose
    forward fits in the CUDA device's memory."""

    def fits(n: int) -> bool:
        try:
            with torch.inference_mode():
                encoder.forward_batch(encoder.collate([sample] * n))
            torch.cuda.synchronize(encoder.device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    return largest_fitting(fits, cap=cap)

