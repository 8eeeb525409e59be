"""Start training from a bound run, and keep what the encoders already know.

``train`` (preset ``default``, ``--init auto``) binds the features when it can (``unibind.binding``:
offline, text and images; aligned, every modality) and trains *residual* heads on top of the bound
map: ``head(x) = bound(x) + delta(x)``, the bound part frozen and ``delta``'s last layer starting
at zero, so training starts exactly at the bound run's text block. Modalities the bound run lacks
or keeps in a block of their own (offline sounds: no text side) get ordinary heads into the text
block; the own blocks are left out of the trained space. After training, the heads are
interpolated in weight space between the start and the trained heads (WiSE-FT):
``start + a x (trained - start)`` for the text block's modalities, with the share ``a`` chosen
on validation data.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from unibind.binding.layout import own_modalities, trim_output
from unibind.errors import UsageError
from unibind.features.folder import Features
from unibind.run.folder import Run
from unibind.run.heads import Heads, HeadsConfig
from unibind.training.config import TrainConfig

log = logging.getLogger(__name__)

INIT_CHOICES = ("auto", "none")


def bind_in(feats: Features, folder: Path, split_seed: int, cfg: TrainConfig) -> Run | None:
    """The bound run of ``feats`` written at ``folder`` (``None`` when they cannot be bound)."""
    from unibind.binding.bind import BindError, bind, scheme_of

    try:
        scheme_of(feats)
    except BindError as exc:
        log.info("no bound start (new heads): %s", str(exc).split(":")[0])
        return None
    bind(feats, folder, split_seed=split_seed, val=cfg.val_fraction, test=cfg.test_fraction)
    return Run.load(folder)


def resolve_init(feats: Features, init: str | os.PathLike | None, cfg: TrainConfig,
                 split_seed: int, folder: Path | None = None) -> Run | None:
    """The bound run to start from: ``"auto"`` binds the features when the preset starts from a
    bound run and they can be bound; ``"none"``/``None``: no start; else a bound run's path."""
    if init is None or str(init) == "none":
        return None
    if str(init) == "auto":
        if not cfg.bound_start:
            return None
        folder = folder or Path(tempfile.mkdtemp(prefix="unibind-bound-"))
        return bind_in(feats, folder, split_seed, cfg)
    return Run.load(init)


def text_block(run: Run) -> tuple[list[str], int]:
    """The bound run's modalities sharing the space with text, and that block's width (a bound
    run's own-space blocks follow it: ``unibind.binding.layout``)."""
    base = run.heads.cfg
    own = own_modalities(run.reach, base.dims)
    return ([m for m in base.dims if m not in own],
            base.embed_dim - sum(base.dims[m] for m in own))


def residual_heads(run: Run, feats: Features, cfg: TrainConfig) -> Heads:
    """Heads in the bound run's text block: a residual head on each of its heads (weights
    frozen), a new ``cfg.hidden`` MLP head for each modality the bound run lacks or keeps in an
    own block (the identity there says nothing about text, and would be trained away)."""
    base = run.heads.cfg
    shared, width = text_block(run)
    dims, kinds = {}, {}
    for m in feats.modalities:
        dims[m] = feats.dims[m]
        if m in shared:
            if feats.dims[m] != base.dims[m]:
                raise UsageError(f"--init {run.path}: its {m} head takes {base.dims[m]}-d "
                                 f"features, these features have {feats.dims[m]}-d (extracted "
                                 "with other encoders)")
            kind = base.kinds.get(m) or {"kind": "linear"}
            kinds[m] = {"kind": "residual", "base": kind, "hidden": cfg.hidden or 512,
                        "dropout": cfg.dropout}
    heads = Heads(HeadsConfig(dims=dims, embed_dim=width, hidden=cfg.hidden or 512,
                              dropout=cfg.dropout, kinds=kinds,
                              logit_scale_init=1.0 / cfg.temperature,
                              logit_scale_max=cfg.logit_scale_max))
    for m in kinds:
        heads.proj[m].base.load_state_dict(trim_output(run.heads.proj[m].state_dict(), width))
        heads.proj[m].base.requires_grad_(False)
        last = heads.proj[m].delta[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    heads.log_logit_scale.requires_grad_(cfg.learn_scale)
    return heads


def interpolate(start: Heads, trained: Heads, share: float, modalities: list[str]) -> Heads:
    """WiSE-FT: ``start + share x (trained - start)`` for the heads of ``modalities`` (the bound
    ones); every other head and the logit scale as trained."""
    out = copy.deepcopy(trained)
    s0, s1 = start.state_dict(), trained.state_dict()
    state = {k: (s0[k] + share * (v - s0[k]) if k.startswith("proj.")
                 and k.split(".")[1] in modalities else v) for k, v in s1.items()}
    out.load_state_dict(state)
    out.eval()
    return out


def soup(heads: list[Heads]) -> Heads:
    """The uniform weight average of heads trained from one start (a model soup)."""
    out = copy.deepcopy(heads[0])
    states = [h.state_dict() for h in heads]
    out.load_state_dict({k: sum(s[k] for s in states) / len(states) for k in states[0]})
    out.eval()
    return out


def bound_summary(run: Run) -> dict[str, Any]:
    """What run.json records of the bound start."""
    bound = run.info.get("bound") or {}
    return {"scheme": bound.get("scheme"), "heads": bound.get("heads"),
            "modalities": run.modalities, "not_available": bound.get("not_available", {})}


__all__ = ["INIT_CHOICES", "bind_in", "bound_summary", "interpolate", "resolve_init",
           "residual_heads", "soup", "text_block"]
