"""``train --finetune``: train the encoders (all, or the last N layers) together with the heads.

This is what the reference did (every backbone trained). It runs on raw inputs read through the
features folder's manifest, through the same fit loop as heads-only training (``train.loop``:
triplets, loss, schedule, held-out split, early stopping); only the embedding step differs.
The run then carries what it needs to be used like any other run:

    RUN/encoders/<modality>/   the fine-tuned encoder (``save_pretrained`` + its preprocessor);
                               ``run.json["encoders"][m]["spec"]["source"]`` points here
    RUN/features/              every item re-embedded with the fine-tuned encoders;
                               ``run.json["features"] == "features"``
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unibind.data.manifest import read_manifest
from unibind.errors import UsageError
from unibind.features.folder import Features, FeaturesError, load_features, save_features
from unibind.modalities import get_modality
from unibind.training.config import TrainConfig, check_config, preset
from unibind.training.finish import finish_run
from unibind.training.fit import preset_base, torch_threads
from unibind.training.loop import fit_loop

log = logging.getLogger(__name__)
PREPROCESSORS = ("tokenizer", "processor", "extractor", "feature_extractor")


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The model's longest ``ModuleList`` (its stack of transformer layers/blocks)."""
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and (best is None or len(mod) > len(best[1])):
            best = (name, mod)
    return best


def set_trainable(model: nn.Module, last_n: int = 0) -> int:
    """Unfreeze all parameters (``last_n <= 0``) or the last ``last_n`` layers of the layer stack
    and every parameter registered after them (final norm, pooler, projection). Returns the
    number of trainable parameters."""
    params = list(model.named_parameters())
    start = 0
    found = layer_list(model) if last_n > 0 else None
    if found:
        name, layers = found
        first = f"{name}.{max(len(layers) - last_n, 0)}." if name else \
            f"{max(len(layers) - last_n, 0)}."
        start = next((i for i, (n, _) in enumerate(params) if n.startswith(first)), 0)
    for i, (_, p) in enumerate(params):
        p.requires_grad_(i >= start)
    return sum(p.numel() for _, p in params[start:])


def item_inputs(feats: Features) -> dict[str, list[Any]]:
    """Per modality, in matrix-row order: the raw input of each item (text, or a media path)."""
    if feats.manifest_path is None:
        raise FeaturesError("fine-tuning needs a features folder written by `unibind extract` "
                            "(its meta names the manifest with the raw inputs)")
    manifest = read_manifest(feats.manifest_path, check_files=False,
                             allow_outside=bool(feats.meta.get("allow_outside_paths")))
    out = {}
    for m in feats.modalities:
        rows = feats.table(m)
        modality = get_modality(m)
        out[m] = [modality.item_input(t, p, manifest.resolve)
                  for t, p in zip(rows["text"], rows["path"])]
    return out


class Backbones:
    """The embedding step of fine-tuning (``train.loop.EmbeddingStep``): the encoders being
    trained, run on the raw inputs (decoded inputs are cached)."""

    path = "finetune"
    cap_batches = True

    def __init__(self, encoders: dict[str, Any], inputs: dict[str, list[Any]],
                 device: torch.device | None = None, cache_items: int = 4096):
        self.encoders, self.raw = encoders, inputs
        self.device = device or torch.device("cpu")
        self.cache: dict[tuple[str, int], Any] = {}
        self.cache_items = cache_items

    def decoded(self, m: str, row: int) -> Any:
        key = (m, int(row))
        if key not in self.cache:
            value = self.encoders[m].load(self.raw[m][int(row)])
            if len(self.cache) >= self.cache_items:
                return value
            self.cache[key] = value
        return self.cache[key]

    def features(self, m: str, rows: np.ndarray) -> torch.Tensor:
        enc = self.encoders[m]
        return enc.forward([self.decoded(m, r) for r in rows]).float()

    def batch_size(self, cfg: TrainConfig) -> int:
        return cfg.finetune_batch_size

    def param_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]:
        return [{"params": self.parameters(), "lr": cfg.backbone_lr}]

    def inputs(self, m: str, rows: np.ndarray) -> torch.Tensor:
        here = rows >= 0
        x = torch.zeros(len(rows), self.encoders[m].dim, device=self.device)
        if here.any():
            x[torch.from_numpy(here).to(self.device)] = self.features(m, rows[here]).to(
                self.device)
        return x

    @torch.no_grad()
    def encode(self, m: str, rows: np.ndarray, batch: int = 32) -> np.ndarray:
        enc = self.encoders[m]
        enc.model.eval()
        out = [self.features(m, rows[i:i + batch]).cpu().numpy()
               for i in range(0, len(rows), batch)]
        return np.concatenate(out) if out else np.zeros((0, enc.dim), np.float32)

    def train(self, mode: bool = True) -> None:
        for enc in self.encoders.values():
            enc.model.train(mode)

    def parameters(self) -> list[nn.Parameter]:
        return [p for enc in self.encoders.values() for p in enc.model.parameters()
                if p.requires_grad]

    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {m: copy.deepcopy(enc.model.state_dict()) for m, enc in self.encoders.items()}

    def load_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for m, sd in state.items():
            self.encoders[m].model.load_state_dict(sd)


def save_encoder(enc: Any, folder: Path) -> None:
    """``save_pretrained`` of the model and of its preprocessor (tokenizer/processor)."""
    folder.mkdir(parents=True, exist_ok=True)
    enc.model.save_pretrained(str(folder))
    for attr in PREPROCESSORS:
        if hasattr(enc, attr) and hasattr(getattr(enc, attr), "save_pretrained"):
            getattr(enc, attr).save_pretrained(str(folder))


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Mixed precision for fine-tuning: "auto" = bf16 on a CUDA GPU that has it, else none
    (fp32); "bf16" / "fp16" force autocast to that dtype; "fp32" turns it off."""
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    choices = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
    if precision not in choices:
        raise UsageError(f"precision {precision!r} not in auto, {', '.join(choices)}")
    return choices[precision]


def enable_checkpointing(model: nn.Module) -> bool:
    """Gradient checkpointing on a transformers model (recompute activations in backward)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        return False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return True


def finetune(features: str | os.PathLike, out: str | os.PathLike, preset_name: str = "default",
             config: TrainConfig | None = None, seed: int = 0,
             device: torch.device | str | None = None, threads: int | None = None,
             precision: str = "auto", checkpointing: bool = False, split_seed: int = 0
             ) -> dict[str, Any]:
    """Fine-tune encoders + heads on the features folder's raw inputs; write a run at ``out``.

    The same fit loop as heads-only training (``train.loop.fit_loop``), with ``Backbones`` as
    its embedding step. ``device`` defaults to auto (cuda > mps > cpu); ``precision`` "auto" =
    bf16 autocast on a CUDA GPU that supports it; ``checkpointing`` trades compute for memory
    (larger batches)."""
    from unibind.encoders import fingerprint, identity, load_encoder
    from unibind.encoders.spec import EncoderSpec
    from unibind.util.runtime import pick_device

    feats = load_features(features)
    cfg = config or preset(preset_name)
    check_config(cfg, Backbones.path, preset_base(preset_name))  # before loading any encoder
    device = device if isinstance(device, torch.device) else pick_device(device)
    amp = autocast_dtype(device, precision)
    inputs = item_inputs(feats)
    encoders = {m: load_encoder(feats.meta["encoders"][m]["spec"], device=device)
                for m in feats.modalities}
    trainable = {m: set_trainable(enc.model, cfg.finetune_layers) for m, enc in encoders.items()}
    if checkpointing:
        for m, enc in encoders.items():
            if not enable_checkpointing(enc.model):
                log.warning("%s encoder: no gradient checkpointing support; ignored", m)
    bb = Backbones(encoders, inputs, device)
    cuda = [device] if torch.device(device).type == "cuda" else []
    with torch_threads(threads), torch.random.fork_rng(devices=cuda):  # caller's state kept
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            res = fit_loop(feats, cfg, bb, seed, split_seed, preset_base(preset_name))
        arrays = {m: bb.encode(m, np.arange(len(inputs[m]))) for m in feats.modalities}
    tuned = Features(items=feats.items, arrays=arrays, meta=dict(feats.meta), path=None)
    out = Path(out)
    final = out.resolve()

    def write_extra(tmp: Path) -> dict[str, Any]:
        # Encoders live in RUN/encoders/<m>; specs point there by relative paths (resolved on
        # load: Run.encoders, load_features), so the run folder can be moved as a whole.
        enc_meta, feat_meta = {}, {}
        for m, enc in encoders.items():
            save_encoder(enc, tmp / "encoders" / m)
            staged = EncoderSpec(m, enc.spec.backend, str(tmp / "encoders" / m),
                                 options=dict(enc.spec.options))
            ident = {**identity(staged), "source": f"encoders/{m}",
                     "finetuned_from": feats.meta["encoders"][m].get("identity")}
            entry = {"identity": ident, "fingerprint": fingerprint(staged),
                     "dim": int(arrays[m].shape[1])}
            spec = staged.to_dict()
            enc_meta[m] = {**entry, "spec": {**spec, "source": f"encoders/{m}"}}
            feat_meta[m] = {**entry, "spec": {**spec, "source": f"../encoders/{m}"}}
        meta = {**feats.meta, "encoders": feat_meta,
                "manifest": os.path.relpath(feats.manifest_path, final / "features")}
        save_features(tmp / "features", feats.items, arrays, meta)
        return {"encoders": enc_meta, "features": "features"}

    how = {"layers": cfg.finetune_layers, "backbone_lr": cfg.backbone_lr,
           "trainable_params": trainable, "base_features": str(Path(feats.path).resolve())}
    return finish_run(tuned, out, res.heads, res, preset_name, cfg, seed,
                      info_extra={"finetune": how}, summary_extra={"finetune": how},
                      write_extra=write_extra)
