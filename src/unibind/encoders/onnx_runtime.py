"""Run encoders with ONNX Runtime: export once, verify against torch, cache, run.

``use_runtime(encoder, runtime)`` attaches a graph runtime to a loaded (torch) encoder:

- the backend's ``graph_parts()`` core is exported with the dynamo exporter (dynamic batch and
  sequence axes) into the user cache (``<cache>/graphs/<key>/``, NOT the features cache), keyed
  by the encoder fingerprint, the graph format and the torch / onnx / onnxscript / onnxruntime
  versions; written atomically under a file lock (two processes export once between them);
- at export the graph is checked against torch on a probe batch (padded texts, several image
  sizes, several audio windows): every item's cosine must reach ``COSINE_MIN``, else
  ``GraphExportError`` names the model (``auto`` then stays in torch; the failure is cached);
- fp32 graph vectors therefore share feature-cache entries with torch ones; ``quantize: int8``
  (a spec option, so its own fingerprint and cache) runs a dynamically quantized copy.

``auto`` = ONNX Runtime on the CPU (fp32) for backends that export faithfully, torch elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unibind.encoders.base import Encoder
from unibind.encoders.graph import GraphParts
from unibind.encoders.spec import EncoderLoadError, EncoderSpec, fingerprint
from unibind.errors import UsageError, unknown
from unibind.util.atomic import atomic_file, atomic_folder
from unibind.util.runtime import cache_root

RUNTIMES = ("auto", "torch", "onnx")
QUANTIZE = ("int8",)
COSINE_MIN = 0.99999  # per probe item, graph vs torch (fp32)
INT8_COSINE_MIN = 0.95  # a quantized graph further off than this is refused
GRAPH_FORMAT = 1  # bump when the exported cores (graph.py, the backends' graph_parts) change
MODEL, INT8, FAILED = "model.onnx", "model.int8.onnx", "failed.json"
INT8_FAILED = "int8-failed.json"

log = logging.getLogger(__name__)


class GraphExportError(EncoderLoadError):
    """An encoder cannot run in ONNX Runtime (export failed, or results differ from torch)."""


def check_runtime(runtime: str, quantize: str | None = None) -> None:
    """``UsageError`` for an unknown runtime or quantization, or int8 asked of torch."""
    if runtime not in RUNTIMES:
        raise unknown("runtime", runtime, list(RUNTIMES))
    if quantize is not None and quantize not in QUANTIZE:
        raise unknown("quantization", quantize, list(QUANTIZE))
    if quantize and runtime == "torch":
        raise UsageError("--quantize int8 runs in ONNX Runtime; use --runtime onnx or auto")


def with_quantize(spec: EncoderSpec, quantize: str | None) -> EncoderSpec:
    """``spec`` with the ``quantize`` option set (its own fingerprint and feature cache)."""
    if not quantize:
        return spec
    return replace(spec, options={**spec.options, "quantize": quantize})


def graph_wanted(runtime: str, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``runtime`` asks for a graph here: "onnx" always, "auto" on the CPU in fp32."""
    if runtime == "onnx":
        if device.type != "cpu" or dtype != torch.float32:
            raise UsageError(f"--runtime onnx runs on the CPU in fp32, not on {device} in "
                             f"{str(dtype).removeprefix('torch.')}; use --device cpu "
                             "--dtype fp32, or --runtime torch")
        return True
    return runtime == "auto" and device.type == "cpu" and dtype == torch.float32


def cpu_threads() -> int:
    """The cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__}


def graph_folder(encoder: Encoder) -> Path:
    """Where the encoder's graphs live: keyed by its fp32 fingerprint and the tool versions."""
    spec = encoder.spec
    base = replace(spec, options={k: v for k, v in spec.options.items() if k != "quantize"})
    payload = {"fingerprint": fingerprint(base), "format": GRAPH_FORMAT, **_versions()}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
    return cache_root() / "graphs" / key


# -- probing -------------------------------------------------------------------------------------
def probe_items(encoder: Encoder) -> list[Any]:
    """Raw inputs of varied sizes (padding, several windows) for the export check."""
    rng = np.random.default_rng(0)
    if encoder.modality == "text":
        return ["a", "a dog barking at the mail carrier in the pouring rain at night", "bell"]
    if encoder.modality == "image":
        return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                for h, w in ((40, 60), (300, 200), (64, 64))]
    rate = getattr(encoder, "sample_rate", None)
    if encoder.modality == "audio" and rate:
        return [rng.uniform(-0.5, 0.5, int(rate * s)).astype(np.float32)
                for s in (0.7, 5.3, 2.6)]
    raise GraphExportError(f"no probe inputs for {encoder.modality} encoders "
                           f"({type(encoder).__name__}); use --runtime torch")


def probe_batch(encoder: Encoder) -> Any:
    """The probe items decoded and collated, as extraction would batch them."""
    return encoder.collate([encoder.load(x) for x in probe_items(encoder)])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine of ``a`` and ``b`` (-1 when either has NaN/inf)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    dot = (a * b).sum(1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(norms > 0, dot / np.maximum(norms, 1e-300), np.all(a == b, axis=1))
    return float(cos.min()) if np.isfinite(a).all() and np.isfinite(b).all() else -1.0


# -- export --------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Silence the exporter's (and quantizer's) warnings and log lines for the duration;
    restore afterwards. The quantizer logs on the root logger itself: a filter there drops only
    records logged directly on it (never what other loggers propagate)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                              "torch.fx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    root_filter = _BelowError()
    logging.getLogger().addFilter(root_filter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        logging.getLogger().removeFilter(root_filter)


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def export_core(parts: GraphParts, batch: Any, path: Path) -> None:
    """Export ``parts.core`` traced on ``batch`` to ``path`` (one file, dynamic axes)."""
    inputs = parts.prep(batch)
    args = tuple(torch.from_numpy(a) for a in inputs.values())
    with quiet_export(), torch.no_grad():
        program = torch.onnx.export(parts.core.eval(), args, dynamo=True, verbose=False,
                                    input_names=list(inputs), output_names=["unibind_vectors"],
                                    dynamic_axes=parts.axes, optimize=True)
        program.save(str(path), external_data=False)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: atomic writes alone
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _name(encoder: Encoder) -> str:
    return f"the {encoder.modality} encoder {encoder.spec.backend}:{encoder.spec.source}"


def _summary(exc: Exception) -> str:
    """One line of an exporter error (they span pages): its exception summary if it has one."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    marked = [ln for ln in lines if ln.startswith("<class ")]
    return (marked or lines or [""])[0][:300]


def _export_verified(encoder: Encoder, parts: GraphParts, folder: Path) -> None:
    """Export, check against torch on the probe batch, publish ``folder`` (or a failure note)."""
    batch = probe_batch(encoder)
    want = parts.run_torch(batch)
    with atomic_folder(folder) as tmp:
        try:
            export_core(parts, batch, tmp / MODEL)
            got = GraphRunner(session(tmp / MODEL), parts)(batch)
            cosine = min_cosine(got, want)
            reason = (None if cosine >= COSINE_MIN else
                      f"its ONNX graph differs from torch (min cosine {cosine:.7f} < "
                      f"{COSINE_MIN} on the probe batch)")
        except Exception as exc:  # exporter failures come in many types
            log.debug("ONNX export of %s failed", _name(encoder), exc_info=True)
            cosine, reason = None, f"export failed: {type(exc).__name__}: {_summary(exc)}"
            for f in tmp.iterdir():
                f.unlink()
        note = {"encoder": encoder.spec.to_dict(), "min_cosine": cosine, **_versions()}
        if reason:
            note["reason"] = reason
        (tmp / (FAILED if reason else "meta.json")).write_text(json.dumps(note, indent=1))
    log.info("exported %s to ONNX in %s (%s)", _name(encoder), folder,
             reason or f"min cosine {cosine:.7f}")


def _quantize(fp32: Path, out: Path, parts: GraphParts, encoder: Encoder) -> None:
    """Dynamic int8 (per-channel weights of MatMul / Gemm: the transformer layers; int8
    convolutions run slower than fp32 ones in ONNX Runtime, so CNNs stay fp32), checked on the
    probe batch before it is published; a refusal is remembered next to it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with quiet_export():
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gemm"])
        batch = probe_batch(encoder)
        cosine = min_cosine(GraphRunner(session(tmp), parts)(batch), parts.run_torch(batch))
        log.info("int8 graph of %s: min cosine %.5f vs fp32 torch on the probe batch",
                 _name(encoder), cosine)
        if cosine < INT8_COSINE_MIN:
            note = {"reason": f"its int8 graph is too far from fp32 (min cosine {cosine:.4f} "
                              f"< {INT8_COSINE_MIN} on the probe batch)"}
            with atomic_file(out.with_name(INT8_FAILED), "w") as fh:
                fh.write(json.dumps(note))
            return
        with atomic_file(out) as fh:
            fh.write(tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)


def graph_file(encoder: Encoder, parts: GraphParts, quantize: str | None = None) -> Path:
    """The verified graph of ``encoder`` (exported on first use); ``GraphExportError`` if it
    cannot be exported faithfully."""
    folder = graph_folder(encoder)
    if not (folder / MODEL).is_file() and not (folder / FAILED).is_file():
        with file_lock(folder.parent / f"{folder.name}.lock"):
            if not (folder / MODEL).is_file() and not (folder / FAILED).is_file():
                _export_verified(encoder, parts, folder)
    if (folder / FAILED).is_file():
        reason = json.loads((folder / FAILED).read_text()).get("reason", "export failed")
        raise GraphExportError(f"{_name(encoder)} cannot run in ONNX Runtime: {reason}")
    if quantize == "int8":
        if not (folder / INT8).is_file() and not (folder / INT8_FAILED).is_file():
            with file_lock(folder / "int8.lock"):
                if not (folder / INT8).is_file() and not (folder / INT8_FAILED).is_file():
                    _quantize(folder / MODEL, folder / INT8, parts, encoder)
        if (folder / INT8_FAILED).is_file():
            reason = json.loads((folder / INT8_FAILED).read_text())["reason"]
            raise GraphExportError(f"{_name(encoder)}: {reason}; drop --quantize")
        return folder / INT8
    return folder / MODEL


# -- running -------------------------------------------------------------------------------------
def session(path: Path, threads: int | None = None) -> Any:
    """A CPU ONNX Runtime session: full graph optimisation (NCHWc layouts, fusions), intra-op
    threads = usable cores, no spin-waiting."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or cpu_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only
    # idle threads sleep instead of spinning (as OMP_WAIT_POLICY=PASSIVE does for torch): a
    # shared CPU (the service's event loop, decode threads, other processes) keeps its cycles
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class GraphRunner:
    """prep -> ONNX Runtime session -> finish: a drop-in for the encoder's torch forward."""

    def __init__(self, sess: Any, parts: GraphParts):
        self.session, self.parts = sess, parts
        self.finish = parts.finish

    def __call__(self, batch: Any) -> np.ndarray:
        out = self.session.run(None, self.parts.prep(batch))[0]
        return np.ascontiguousarray(self.finish(out, batch), dtype=np.float32)


def use_runtime(encoder: Encoder, runtime: str = "auto", threads: int | None = None) -> Encoder:
    """Attach ONNX Runtime to ``encoder`` when ``runtime`` asks for it here (see module doc).

    The spec's ``quantize`` option selects the int8 graph (refused under torch). Under "auto" a
    backend that does not export faithfully stays in torch (logged); under "onnx" it raises."""
    quantize = encoder.spec.options.get("quantize")
    check_runtime(runtime, quantize)
    if not graph_wanted(runtime, encoder.device, encoder.dtype):
        if quantize:
            raise UsageError(f"{_name(encoder)} is quantized (int8): it runs in ONNX Runtime on "
                             "the CPU in fp32 only")
        return encoder
    try:
        parts = encoder.graph_parts()
        path = graph_file(encoder, parts, quantize)
    except (NotImplementedError, GraphExportError) as exc:
        if runtime == "onnx" or quantize:
            raise GraphExportError(str(exc)) from exc
        log.warning("%s; running it in torch", exc)
        return encoder
    encoder.graph = GraphRunner(session(path, threads), parts)
    return encoder
