"""The Ray extraction engine: the same per-batch work (work.py) scheduled by Ray Data.

Pipeline: the planned batches (one row each, so batches are exactly the local engine's) ->
``prepare_batch`` in CPU tasks (decode, preprocess, tokenise) -> ``run_batch`` in a pool of
encoder actors (``map_batches`` with a callable class, ``compute=ActorPoolStrategy``; one GPU per
actor when the cluster has GPUs, fractional CPUs otherwise) which write the cache shards. The
driver then reads the vectors from the shared cache folder (it must be reachable by every node:
a local disk for a one-machine cluster, a shared file system otherwise). Finished shards survive
a killed run, so a rerun computes only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unibind.encoders import Encoder, EncoderSpec, load_encoder
from unibind.errors import Interrupted, UnibindError, UsageError
from unibind.features import work
from unibind.features.cache import FeatureCache
from unibind.util.runtime import pick_device, pick_dtype

log = logging.getLogger(__name__)

_PREPROCESSORS: dict[str, Encoder] = {}  # per worker process: spec -> encoder on CPU


def _key(spec: dict[str, Any]) -> str:
    """A cheap per-process key for a spec (its fingerprint would hash the weights every batch)."""
    return json.dumps(spec, sort_keys=True, default=str)


def _preprocessor(spec: dict[str, Any]) -> Encoder:
    """The encoder used for decoding in this worker process (built once per process)."""
    key = _key(spec)
    if key not in _PREPROCESSORS:
        _PREPROCESSORS[key] = load_encoder(spec, device=torch.device("cpu"))
    return _PREPROCESSORS[key]


def _prepare(row: dict[str, Any], spec: dict[str, Any], pin_memory: bool,
             limits: Any) -> dict[str, Any]:
    chunk = list(zip(row["ids"], row["digests"], row["inputs"]))
    encoder = _preprocessor(spec)
    encoder.limits = limits  # the run's decoding limits, as the local engine sets them
    return {"n": row["n"], "prepared": work.prepare_batch(encoder, chunk, pin_memory)}


class _Forward:
    """Actor: one encoder on its device; forwards prepared batches and writes cache shards."""

    def __init__(self, spec: dict[str, Any], cache_dir: str, fp: str, device: str,
                 dtype: str | None, threads: int):
        torch.set_num_threads(threads)  # this actor's own process: its share of the node
        dev = pick_device(device)
        self.encoder = load_encoder(spec, device=dev, dtype=pick_dtype(dev, dtype))
        if dev.type == "cpu" and self.encoder.dtype == torch.float32:  # Ray may fuse the
            _PREPROCESSORS.setdefault(_key(spec), self.encoder)  # decode here
        self.cache = FeatureCache(cache_dir, fp)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, reasons = [], []
        for prepared in batch["prepared"]:
            vectors, errors = work.run_batch(self.encoder, prepared, self.cache)
            for item_id in [*prepared.ids, *prepared.bad]:
                ids.append(item_id)
                reasons.append(prepared.bad.get(item_id) or errors.get(item_id, ""))
        return {"id": np.array(ids, dtype=object), "reason": np.array(reasons, dtype=object)}


class RayConnectionError(UnibindError, ConnectionError):
    """The Ray cluster could not be joined or started."""


def connection_message(address: str | None, exc: BaseException) -> str:
    """One line naming the address, Ray's reason and, for token authentication, the fix."""
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    text = f"{reason} {type(exc).__name__}".lower()
    hint = ""
    if ("token" in text or "auth" in text or "unauthenticated" in text) and \
            os.environ.get("RAY_AUTH_MODE") != "token":
        hint = ("; the cluster uses token authentication: set RAY_AUTH_MODE=token (and its "
                "token, RAY_AUTH_TOKEN) before running unibind")
    elif address:
        hint = ("; check the address (`ray status` on the head node) and, if the cluster uses "
                "token authentication, set RAY_AUTH_MODE=token")
    return f"cannot connect to {where}: {reason}{hint}"


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A TCP connection to ``HOST:PORT`` (or ``ray://HOST:PORT``) first: Ray itself retries an
    unreachable head for minutes, printing a warning every few seconds."""
    if not address or address == "auto" or ":" not in address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise RayConnectionError(connection_message(address, exc)) from exc


@contextlib.contextmanager
def _cluster(address: str | None) -> Iterator[Any]:
    """Use the caller's Ray session, else join ``address`` (or start a local cluster) for the
    duration of the run only."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError("the ray engine needs Ray: pip install 'unibind[ray]'") from exc
    if ray.is_initialized():
        yield ray
        return
    check_reachable(address)
    try:
        if address and address.startswith("ray://"):  # Ray Client: the cluster has its settings
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
    except Exception as exc:  # noqa: BLE001  (Ray raises ConnectionError, RuntimeError, ...)
        raise RayConnectionError(connection_message(address, exc)) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def encode_ray(spec: EncoderSpec, batches: Sequence[Sequence[work.WorkItem]],
               cache_dir: str | os.PathLike, fp: str, opts: Any
               ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Run the planned batches on a Ray cluster, writing shards into the cache ``fp`` (the
    spec's fingerprint, computed once by the caller); (vectors, errors) keyed by item id, as
    ``local_engine.encode_local`` returns them."""
    if not batches:
        return {}, {}
    with _cluster(opts.address) as ray:
        from ray.data import ActorPoolStrategy

        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = float(ray.cluster_resources().get("CPU", 1))
        use_gpu = gpus > 0 and opts.device_request in (None, "auto") or \
            str(opts.device_request).startswith("cuda")
        if use_gpu:
            actors, resources = max(1, gpus), {"num_gpus": 1, "num_cpus": 1}
            device, dtype = "cuda", opts.dtype_request
        else:  # fractional CPUs leave room for the decode tasks (no starved reads)
            actors, resources = max(1, int(cpus) // 4), {"num_cpus": 0.5}
            device, dtype = "cpu", _dtype_name(opts.dtype)
        threads = max(1, int(cpus) // actors)  # torch threads per actor (its CPU share)
        rows = [{"n": k, "ids": [w[0] for w in b], "digests": [w[1] for w in b],
                 "inputs": [str(w[2]) for w in b]} for k, b in enumerate(batches)]
        spec_dict = spec.to_dict()
        log.info("ray: %d batches, %d %s actor(s)", len(rows), actors, device)
        ctx = ray.data.DataContext.get_current()
        bars = ctx.enable_progress_bars  # Ray Data's bars and INFO lines only with -v
        data_log = logging.getLogger("ray.data")
        data_level = data_log.level
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            ctx.enable_progress_bars = False
            data_log.setLevel(logging.ERROR)  # (incl. its "progress bars disabled" warning)
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * int(cpus)))
        ds = ds.map(_prepare, fn_kwargs={"spec": spec_dict, "pin_memory": use_gpu,
                                         "limits": opts.limits}, num_cpus=0.5)
        ds = ds.map_batches(_Forward, batch_size=1, compute=ActorPoolStrategy(size=actors),
                            fn_constructor_args=(spec_dict, str(Path(cache_dir)), fp, device,
                                                 dtype, threads), **resources)
        try:
            status = ds.take_all()
        except KeyboardInterrupt:
            done = len(FeatureCache(cache_dir, fp).get_many(w[1] for b in batches for w in b))
            raise Interrupted(done // max(1, len(batches[0]))) from None
        finally:  # the caller's settings again
            ctx.enable_progress_bars = bars
            data_log.setLevel(data_level)
    errors = {r["id"]: r["reason"] for r in status if r["reason"]}
    digests = {w[0]: w[1] for b in batches for w in b}
    done = [r["id"] for r in status if not r["reason"]]
    found = FeatureCache(cache_dir, fp).get_many(digests[i] for i in done)
    return {i: found[digests[i]] for i in done if digests[i] in found}, errors
