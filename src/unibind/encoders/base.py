"""The encoder contract shared by every backend.

A backend subclasses ``Encoder`` and implements ``_load_model`` (build ``self.model`` and its
preprocessor), ``load`` (decode one item) and ``forward`` (decoded batch -> tensor), or instead of
``forward`` the pair ``collate`` + ``forward_batch`` (below). Batching,
ordering, no-grad inference and float32 output are handled here once.

``forward`` is ``forward_batch(collate(decoded))``: ``collate`` is the CPU-side batch assembly
(tokenising, stacking; no model, safe to run in a worker thread or process) and ``forward_batch``
the device side, so extraction engines can overlap the two.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from unibind.encoders.spec import EncoderLoadError, EncoderSpec, fingerprint, identity  # noqa: F401
from unibind.errors import UnibindError, UsageError
from unibind.media.decode import DEFAULT_LIMITS, MediaLimits

if TYPE_CHECKING:
    from unibind.encoders.graph import GraphParts

log = logging.getLogger(__name__)


def local_config_value(spec: EncoderSpec, key: str) -> int | None:
    """``key`` from a local model folder's config.json (None for hub ids or when absent)."""
    config = Path(spec.source).expanduser() / "config.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text()).get(key)
    return int(value) if value is not None else None


class ItemError(UnibindError, ValueError):
    """One input item cannot be encoded; ``item`` names it, ``reason`` says why."""

    def __init__(self, item: Any, reason: str):
        super().__init__(f"{item}: {reason}")
        self.item, self.reason = item, reason


class Encoder:
    """Maps items of one modality to float32 vectors of a fixed ``dim``."""

    modality: str = ""
    limits: MediaLimits = DEFAULT_LIMITS  # largest image / audio ``load`` decodes (per instance)

    def __init__(self, spec: EncoderSpec, device: torch.device | None = None,
                 dtype: torch.dtype | None = None):
        if spec.modality != self.modality:
            raise UsageError(f"{type(self).__name__} encodes {self.modality}, not {spec.modality}")
        self.spec = spec
        if device is None:
            from unibind.util.runtime import pick_device

            device = pick_device("auto")
        self.device = device
        self.dtype = dtype or torch.float32
        self.model: torch.nn.Module = self._load_model()
        self.model.to(self.device, self.dtype).eval()
        self.graph: Callable[[Any], np.ndarray] | None = None  # set by a graph runtime (onnx)

    # -- to implement -------------------------------------------------------------------------
    def _load_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def load(self, item: Any) -> Any:
        """Decode one item (text, or a media path) into the backend's input; ``ItemError``."""
        raise NotImplementedError

    def forward(self, decoded: Sequence[Any]) -> torch.Tensor:
        """Decoded batch -> ``[n, dim]`` tensor; differentiable (used for fine-tuning)."""
        return self.forward_batch(self.collate(decoded))

    def collate(self, decoded: Sequence[Any]) -> Any:
        """Decoded items -> one host-side batch (CPU only: no model, thread/process safe)."""
        return list(decoded)

    def forward_batch(self, batch: Any) -> torch.Tensor:
        """A ``collate`` result -> ``[n, dim]`` tensor on the device. A backend implements this
        (with ``collate``) or only ``forward`` (then the batch is the decoded list)."""
        if type(self).forward is not Encoder.forward:
            return self.forward(batch)
        raise NotImplementedError(f"{type(self).__name__} implements neither forward_batch "
                                  "nor forward")

    def graph_parts(self) -> GraphParts:
        """This backend split into prep / exportable core / finish (see graph.py); backends
        that cannot be exported leave this unimplemented (they run in torch)."""
        raise NotImplementedError(f"{type(self).__name__} has no graph export")

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @classmethod
    def config_dim(cls, spec: EncoderSpec) -> int | None:
        """The output dim read cheaply from config files (None when unknown without loading)."""
        return None

    def sort_key(self, decoded: Any) -> int:
        """Batch similar-size inputs together (text: by length); 0 keeps the given order."""
        return 0

    # -- shared -------------------------------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.spec)

    @cached_property
    def identity(self) -> dict[str, Any]:
        return identity(self.spec)

    @property
    def runtime(self) -> str:
        """Where the forward runs: "torch", or "onnx" once a graph runtime is attached."""
        return "torch" if self.graph is None else "onnx"

    @torch.inference_mode()
    def infer(self, batch: Any) -> np.ndarray:
        """A ``collate`` result -> float32 ``[n, dim]`` on the host, through the attached
        graph runtime when there is one, else torch (no gradients)."""
        if self.graph is not None:
            return self.graph(batch)
        return self.forward_batch(batch).float().cpu().numpy()

    def encode_decoded(self, decoded: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """Encode already-decoded inputs in size-sorted batches; output in input order."""
        if len(decoded) == 1:  # a single query: no sorting, no copies
            return self.infer(self.collate(decoded))
        order = sorted(range(len(decoded)), key=lambda i: self.sort_key(decoded[i]))
        out = np.empty((len(decoded), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self.infer(self.collate([decoded[i] for i in idx]))
        return out

    def encode(self, items: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """Items (texts, or media paths) -> float32 ``[n, dim]``; a bad item raises ItemError."""
        return self.encode_decoded([self.load(item) for item in items], batch_size)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a processor's output to the model's device; float tensors to its dtype."""
        return {k: v.to(self.device, self.dtype if v.is_floating_point() else None,
                        non_blocking=True) for k, v in batch.items()}
