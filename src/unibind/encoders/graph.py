"""An encoder split for graph runtimes: prep (host batch -> numpy inputs), core (the module that
is exported, tensors in, ``[n, d]`` out) and finish (numpy post-processing, e.g. the per-item
mean over audio windows). Backends describe themselves with ``Encoder.graph_parts()``; the
runtime (onnx_runtime.py) exports ``core`` once and runs it with ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def _same(out: np.ndarray, batch: Any) -> np.ndarray:
    return out


@dataclass
class GraphParts:
    """``core(*inputs)`` with ``inputs = prep(batch)`` (a dict: input name -> array, in the
    order of ``core``'s arguments), then ``finish(core_output, batch)``. ``axes`` names each
    input's dynamic axes (e.g. ``{"input_ids": {0: "batch", 1: "seq"}}``)."""

    core: torch.nn.Module
    prep: Callable[[Any], dict[str, np.ndarray]]
    axes: dict[str, dict[int, str]]
    finish: Callable[[np.ndarray, Any], np.ndarray] = field(default=_same)

    def run_torch(self, batch: Any) -> np.ndarray:
        """The reference: the same three steps with the core in torch (eager)."""
        with torch.inference_mode():
            args = [torch.from_numpy(a) for a in self.prep(batch).values()]
            out = self.core(*args).float().numpy()
        return self.finish(out, batch)


def numpy_inputs(batch: dict[str, torch.Tensor], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A tokenizer's tensors -> int64 arrays named ``keys`` (in that order)."""
    return {k: np.ascontiguousarray(batch[k].numpy(), dtype=np.int64) for k in keys}


def mean_by_count(emb: np.ndarray, counts: list[int] | np.ndarray) -> np.ndarray:
    """Rows of ``emb`` grouped consecutively (``counts[i]`` rows for item ``i``) -> their means."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (np.add.reduceat(emb, starts, axis=0) / counts[:, None]).astype(np.float32)


def text_axes(keys: tuple[str, ...]) -> dict[str, dict[int, str]]:
    """Dynamic axes of token inputs: batch and sequence."""
    return {k: {0: "batch", 1: "seq"} for k in keys}
