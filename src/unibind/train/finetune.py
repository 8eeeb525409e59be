"""``train --finetune``: train the encoders (all, or the last N layers) together with the heads.

This is what the reference did (every backbone trained). It runs on raw inputs read through the
features folder's manifest, with the same triplets, loss, presets and held-out split as heads-only
training. The run then carries what it needs to be used like any other run:

    RUN/encoders/<modality>/   the fine-tuned encoder (``save_pretrained`` + its preprocessor);
                               ``run.json["encoders"][m]["spec"]["source"]`` points here
    RUN/features/              every item re-embedded with the fine-tuned encoders;
                               ``run.json["features"] == "features"``
"""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from unibind.eval.metrics import cross_modal_mean, pair_metrics
from unibind.features.manifest import read_manifest
from unibind.features.splits import assign_splits
from unibind.features.store import Features, FeaturesError, load_features, save_features
from unibind.modalities import get_modality
from unibind.run.folder import save_run
from unibind.run.heads import Heads
from unibind.train.batches import Triplets
from unibind.train.config import TrainConfig, check_config, preset
from unibind.train.fit import FitResult, make_heads, run_info, space_stats, torch_threads
from unibind.train.losses import total_loss

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
    if feats.path is None or "manifest" not in feats.meta:
        raise FeaturesError("fine-tuning needs a features folder written by `unibind extract` "
                         "(its meta names the manifest with the raw inputs)")
    manifest = read_manifest(Path(feats.path) / feats.meta["manifest"], check_files=False,
                             allow_outside=bool(feats.meta.get("allow_outside_paths")))
    out = {}
    for m in feats.modalities:
        rows = feats.table(m)
        modality = get_modality(m)
        out[m] = [modality.item_input(t, p, manifest.resolve)
                  for t, p in zip(rows["text"], rows["path"])]
    return out


class Backbones:
    """The encoders being fine-tuned, with a cache of decoded inputs."""

    def __init__(self, encoders: dict[str, Any], inputs: dict[str, list[Any]],
                 cache_items: int = 4096):
        self.encoders, self.inputs = encoders, inputs
        self.cache: dict[tuple[str, int], Any] = {}
        self.cache_items = cache_items

    def decoded(self, m: str, row: int) -> Any:
        key = (m, int(row))
        if key not in self.cache:
            value = self.encoders[m].load(self.inputs[m][int(row)])
            if len(self.cache) >= self.cache_items:
                return value
            self.cache[key] = value
        return self.cache[key]

    def features(self, m: str, rows: np.ndarray) -> torch.Tensor:
        enc = self.encoders[m]
        return enc.forward([self.decoded(m, r) for r in rows]).float()

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


def _val_metric(heads: Heads, bb: Backbones, feats: Features, split: np.ndarray,
                max_n: int) -> float:
    embs, labels = {}, {}
    for m in feats.modalities:
        rows = feats.table(m)[_mask_of(feats, split, m, "val")].iloc[:max_n]
        if len(rows):
            x = torch.from_numpy(bb.encode(m, rows["row"].to_numpy()))
            with torch.no_grad():
                emb = heads.embed(m, x.to(next(heads.parameters()).device))
                embs[m] = emb.float().cpu().numpy()  # (bf16 under autocast)
            labels[m] = rows["label"].astype(str).to_numpy()
    return cross_modal_mean(pair_metrics(embs, labels, ks=(1,)))


def _mask_of(feats: Features, split: np.ndarray, m: str, which: str) -> np.ndarray:
    """Boolean over ``feats.table(m)`` rows: items of modality ``m`` in split ``which``."""
    by_id = pd.Series(split, index=feats.items["id"].to_numpy())
    return (by_id.loc[feats.table(m)["id"].to_numpy()] == which).to_numpy()


def finetune_fit(feats: Features, bb: Backbones, cfg: TrainConfig, seed: int,
                 device: torch.device) -> FitResult:
    check_config(cfg)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    split, split_info = assign_splits(feats.items, cfg.val_fraction, cfg.test_fraction, 0)
    split = split.to_numpy()
    mods = feats.modalities
    trip = Triplets.from_items(feats.items[split == "train"], mods, seed)
    heads = make_heads(feats, cfg).to(device)
    labels = torch.from_numpy(trip.labels.copy()).to(device)
    opt = torch.optim.AdamW([
        {"params": [p for p in heads.parameters() if p.requires_grad], "lr": cfg.lr},
        {"params": bb.parameters(), "lr": cfg.backbone_lr}], weight_decay=cfg.weight_decay)
    bs = cfg.finetune_batch_size
    has_val = bool((split == "val").any())
    curve, best, best_state, since, stopped = [], -1.0, None, 0, False
    best_epoch, t_start = 0, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        heads.train()
        bb.train(True)
        rows = trip.sample(rng)
        perm = rng.permutation(trip.n_groups)
        losses = []
        for start in range(0, trip.n_groups - 1, bs):
            idx = perm[start:start + bs]
            if len(idx) < 2:
                continue
            embs, present = {}, {}
            for m in mods:
                r = rows[m][idx]
                here = r >= 0
                present[m] = torch.from_numpy(here).to(device)
                x = torch.zeros(len(idx), feats.dims[m], device=device)
                if here.any():
                    x[present[m]] = bb.features(m, r[here]).to(device)
                embs[m] = heads.embed(m, x)
            loss, _ = total_loss(embs, present, labels[torch.from_numpy(idx).to(device)],
                                 heads.logit_scale(), cfg.pair_weights, cfg.positives,
                                 cfg.mse_weight)
            if not loss.requires_grad:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        entry: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses or [np.nan])),
                                 "logit_scale": float(heads.logit_scale().detach()),
                                 "seconds": time.perf_counter() - t0}
        if has_val:
            heads.eval()
            entry["val_mAP@10"] = _val_metric(heads, bb, feats, split, cfg.val_queries)
            if entry["val_mAP@10"] > best:
                best, best_epoch, since = entry["val_mAP@10"], epoch, 0
                if cfg.patience > 0:
                    best_state = (copy.deepcopy(heads.state_dict()), bb.state())
            else:
                since += 1
        curve.append(entry)
        log.info("finetune epoch %d/%d loss %.4f val mAP@10 %s", epoch, cfg.epochs,
                 entry["loss"], entry.get("val_mAP@10"))
        if has_val and cfg.patience > 0 and since >= cfg.patience:
            stopped = True
            break
    if best_state is not None:
        heads.load_state_dict(best_state[0])
        bb.load_state(best_state[1])
    else:
        best_epoch, best = len(curve), curve[-1].get("val_mAP@10", -1.0)
    heads.eval()
    bb.train(False)
    return FitResult(heads=heads.cpu(), curve=curve, best_epoch=best_epoch,
                     best_val=best if has_val else None, stopped_early=stopped,
                     seconds=time.perf_counter() - t_start, split=split, split_info=split_info)


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
        raise ValueError(f"precision {precision!r} not in auto, {', '.join(choices)}")
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
             precision: str = "auto", checkpointing: bool = False) -> dict[str, Any]:
    """Fine-tune encoders + heads on the features folder's raw inputs; write a run at ``out``.

    ``device`` defaults to auto (cuda > mps > cpu); ``precision`` "auto" = bf16 autocast on a
    CUDA GPU that supports it; ``checkpointing`` trades compute for memory (larger batches)."""
    from unibind.encoders import fingerprint, identity, load_encoder
    from unibind.encoders.spec import EncoderSpec
    from unibind.util.runtime import pick_device

    feats = load_features(features)
    cfg = config or preset(preset_name)
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
    bb = Backbones(encoders, inputs)
    cuda = [device] if torch.device(device).type == "cuda" else []
    with torch_threads(threads), torch.random.fork_rng(devices=cuda):  # caller's state kept
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            res = finetune_fit(feats, bb, cfg, seed, device)
        arrays = {m: bb.encode(m, np.arange(len(inputs[m]))) for m in feats.modalities}
    tuned = Features(items=feats.items, arrays=arrays, meta=dict(feats.meta), path=None)
    stats = space_stats(res.heads, tuned, res.split)
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
                "manifest": os.path.relpath((Path(feats.path) / feats.meta["manifest"]).resolve(),
                                            final / "features")}
        save_features(tmp / "features", feats.items, arrays, meta)
        return {"encoders": enc_meta, "features": "features"}

    info = run_info(tuned, out, preset_name, cfg, seed, res, stats,
                    extra={"finetune": {"layers": cfg.finetune_layers,
                                        "backbone_lr": cfg.backbone_lr,
                                        "trainable_params": trainable,
                                        "base_features": str(Path(feats.path).resolve())}})
    save_run(out, res.heads, info, centers=stats["centers"], extra=write_extra)
    log.info("wrote fine-tuned run %s", out)
    return {"run": str(out), "preset": preset_name, "seed": seed, "epochs": len(res.curve),
            "best_epoch": res.best_epoch, "val_mAP@10": res.best_val,
            "stopped_early": res.stopped_early, "seconds": round(res.seconds, 3),
            "finetune": info["finetune"], "split": res.split_info,
            "search": {k: stats["search"][k] for k in ("center", "mode")}}
