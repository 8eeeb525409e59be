"""The one fit loop, for heads-only training and for fine-tuning.

What differs between the two is the embedding step (``EmbeddingStep``): how the rows of a batch
become head inputs. ``FeatureStep`` looks them up in the precomputed features (heads-only);
``train.finetune.Backbones`` runs the encoders being fine-tuned on the raw inputs. Everything
else is shared: the held-out split, triplet batches, loss, optimiser and schedule, validation
(cross-modal mAP@10 through ``run.embed``), early stopping and the curve.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from unibind.errors import UnibindError
from unibind.eval.metrics import cross_modal_mean, pair_metrics
from unibind.features.folder import Features
from unibind.features.splits import assign_splits, group_keys
from unibind.run.embed import embed_items
from unibind.run.heads import Heads, HeadsConfig
from unibind.training.batches import Triplets
from unibind.training.config import TrainConfig, check_config
from unibind.training.losses import total_loss

log = logging.getLogger(__name__)


class TrainingError(UnibindError, ValueError):
    """The data cannot be trained on (e.g. fewer than two training groups)."""


@dataclass
class FitResult:
    heads: Heads
    curve: list[dict[str, Any]]
    best_epoch: int
    best_val: float | None
    stopped_early: bool
    seconds: float
    split: Any = None
    split_info: dict[str, Any] = field(default_factory=dict)

    @property
    def best_entry(self) -> dict[str, Any]:
        """The curve entry of the kept epoch (validation figures at ``best_epoch``)."""
        return self.curve[self.best_epoch - 1] if 0 < self.best_epoch <= len(self.curve) else {}


class EmbeddingStep(Protocol):
    """Turns matrix rows of a modality into head inputs; ``path`` names the training path
    (``train.config.PATHS``) whose config fields apply; ``cap_batches``: never exceed the batch
    size (see ``batch_bounds``)."""

    path: str
    device: torch.device
    cap_batches: bool

    def batch_size(self, cfg: TrainConfig) -> int: ...

    def param_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]: ...

    def inputs(self, modality: str, rows: np.ndarray) -> torch.Tensor:
        """Head inputs ``[len(rows), d_m]`` of a batch; ``rows`` is -1 where an item is absent."""
        ...

    def encode(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """Encoder features of ``rows`` without gradients (validation)."""
        ...

    def train(self, mode: bool = True) -> None: ...

    def state(self) -> Any: ...

    def load_state(self, state: Any) -> None: ...


class FeatureStep:
    """Heads-only: head inputs are the precomputed encoder features."""

    path = "heads"
    device = torch.device("cpu")
    cap_batches = False

    def __init__(self, feats: Features):
        self.arrays = feats.arrays
        self.xs = {m: torch.from_numpy(np.ascontiguousarray(feats.arrays[m]))
                   for m in feats.modalities}

    def batch_size(self, cfg: TrainConfig) -> int:
        return cfg.batch_size

    def param_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]:
        return []

    def inputs(self, modality: str, rows: np.ndarray) -> torch.Tensor:
        return self.xs[modality][torch.from_numpy(np.maximum(rows, 0))]

    def encode(self, modality: str, rows: np.ndarray) -> np.ndarray:
        return self.arrays[modality][rows]

    def train(self, mode: bool = True) -> None:
        pass

    def state(self) -> None:
        return None

    def load_state(self, state: Any) -> None:
        pass


def make_heads(features: Features, cfg: TrainConfig) -> Heads:
    """Fresh projection heads for the features' modalities and the config."""
    dims = {m: features.dims[m] for m in features.modalities}  # canonical order: same init
    hcfg = HeadsConfig(dims=dims, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                       dropout=cfg.dropout, logit_scale_init=1.0 / cfg.temperature,
                       logit_scale_max=cfg.logit_scale_max)
    heads = Heads(hcfg)
    heads.log_logit_scale.requires_grad_(cfg.learn_scale)
    return heads


def lr_lambda(cfg: TrainConfig, total_steps: int):
    """The learning-rate multiplier per step: constant, or cosine decay to zero."""
    if cfg.schedule == "constant":
        return lambda step: 1.0
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def batch_bounds(n: int, size: int, cap: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` of each batch over ``n`` shuffled groups. The remainder joins the last
    batch, or, with ``cap`` (fine-tuning: encoder activations bound the batch), is a batch of
    its own when it holds at least two groups (one group has nothing to contrast)."""
    if cap:
        return [(a, min(a + size, n)) for a in range(0, n, size) if min(a + size, n) - a >= 2]
    steps = max(n // size, 1)
    return [(b * size, (b + 1) * size if b < steps - 1 else n) for b in range(steps)]


def validation_scores(heads: Heads, feats: Features, mask: np.ndarray, max_per_modality: int,
                      select: str = "class", encode: Any = None) -> dict[str, float]:
    """Validation figures of the items of ``mask`` (a per-modality subsample, seed 0):
    ``mAP@10`` (cross-modal, class level), with ``select="both"`` and groups linking
    modalities also ``instance_MRR`` (same group relevant); ``score`` is the criterion: the
    class mAP@10, or the mean of the two levels."""
    emb = embed_items(heads, feats, mask, max_per_modality, seed=0, encode=encode)
    out = {"mAP@10": cross_modal_mean(pair_metrics(emb.vectors, emb.labels, ks=(1,))) or 0.0}
    out["score"] = out["mAP@10"]
    if select == "both":
        groups = {m: group_keys(emb.table(m)).astype(str).to_numpy() for m in emb.vectors}
        inst = cross_modal_mean(pair_metrics(emb.vectors, groups, ks=(1,)), "MRR")
        if inst is not None:
            out["instance_MRR"] = inst
            out["score"] = 0.5 * (out["mAP@10"] + inst)
    return out


def validation_map(heads: Heads, feats: Features, mask: np.ndarray, step: EmbeddingStep,
                   max_per_modality: int) -> float:
    """Cross-modal mAP@10 of the items of ``mask`` (a per-modality subsample, seed 0)."""
    return validation_scores(heads, feats, mask, max_per_modality, encode=step.encode)["mAP@10"]


def fit_loop(feats: Features, cfg: TrainConfig, step: EmbeddingStep, seed: int = 0,
             split_seed: int = 0, base: TrainConfig | None = None,
             init: Heads | None = None) -> FitResult:
    """Train heads (and whatever ``step`` trains) on the training split; early stopping on
    the validation criterion (``validation_scores``: class mAP@10, or both levels).
    ``base``: the preset ``cfg`` came from, to refuse fields the step's path would ignore
    (``train.config.check_config``); ``init``: heads to start from
    (default: new ones, ``make_heads``)."""
    check_config(cfg, step.path, base)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    split, split_info = assign_splits(feats.items, cfg.val_fraction, cfg.test_fraction,
                                      split_seed)
    split = split.to_numpy()
    mods = feats.modalities
    trip = Triplets.from_items(feats.items[split == "train"], mods, seed)
    if trip.n_groups < 2:
        raise TrainingError(f"only {trip.n_groups} training group(s): nothing to contrast")
    dev = step.device
    labels = torch.from_numpy(trip.labels.copy()).to(dev)
    heads = (make_heads(feats, cfg) if init is None else init).to(dev)
    groups = [{"params": [p for p in heads.parameters() if p.requires_grad], "lr": cfg.lr},
              *[g for g in step.param_groups(cfg) if g["params"]]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    bounds = batch_bounds(trip.n_groups, step.batch_size(cfg), step.cap_batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, len(bounds) * cfg.epochs))
    has_val = bool((split == "val").any())
    curve: list[dict[str, Any]] = []
    best_val, best_epoch, best_state, since = -1.0, 0, None, 0
    stopped, t_start = False, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        heads.train()
        step.train(True)
        rows = trip.sample(rng)
        perm = rng.permutation(trip.n_groups)
        loss_sum, n_batches, parts_sum = 0.0, 0, {}
        for start, stop in bounds:
            idx = perm[start:stop]
            present, embs = {}, {}
            for m in mods:
                r = rows[m][idx]
                present[m] = torch.from_numpy(r >= 0).to(dev)
                embs[m] = heads.embed(m, step.inputs(m, r))
            loss, parts = total_loss(embs, present, labels[torch.from_numpy(idx).to(dev)],
                                     heads.logit_scale(), cfg.pair_weights, cfg.positives,
                                     cfg.mse_weight, cfg.class_weight)
            if not loss.requires_grad:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach())
            n_batches += 1
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
        entry: dict[str, Any] = {
            "epoch": epoch, "loss": loss_sum / max(n_batches, 1),
            "parts": {k: v / max(n_batches, 1) for k, v in parts_sum.items()},
            "logit_scale": float(heads.logit_scale().detach()),
            "lr": float(sched.get_last_lr()[0]), "seconds": time.perf_counter() - t0}
        if has_val:
            t1 = time.perf_counter()
            val = validation_scores(heads, feats, split == "val", cfg.val_queries, cfg.select,
                                    step.encode)
            entry["val_mAP@10"] = val["mAP@10"]
            if "instance_MRR" in val:
                entry["val_instance_MRR"] = val["instance_MRR"]
            entry["val_score"] = val["score"]
            entry["val_seconds"] = time.perf_counter() - t1
            if entry["val_score"] > best_val:
                best_val, best_epoch, since = entry["val_score"], epoch, 0
                if cfg.patience > 0:
                    best_state = (copy.deepcopy(heads.state_dict()), step.state())
            else:
                since += 1
        curve.append(entry)
        log.info("epoch %d/%d loss %.4f val mAP@10 %s (%.2fs)", epoch, cfg.epochs,
                 entry["loss"], f"{entry.get('val_mAP@10', float('nan')):.4f}",
                 entry["seconds"])
        if has_val and cfg.patience > 0 and since >= cfg.patience:
            stopped = True
            log.info("early stop: no validation gain for %d epochs", cfg.patience)
            break
    if best_state is not None:
        heads.load_state_dict(best_state[0])
        step.load_state(best_state[1])
    else:
        best_epoch = len(curve)
        best_val = curve[-1].get("val_score")
    heads.eval()
    step.train(False)
    return FitResult(heads=heads.cpu(), curve=curve, best_epoch=best_epoch,
                     best_val=best_val if has_val else None, stopped_early=stopped,
                     seconds=time.perf_counter() - t_start, split=split, split_info=split_info)
