"""features -> run with no training and no paired media: bind every modality to one space that
its encoders already share with text.

Two schemes, chosen from the encoders the features were extracted with:

- ``text-bridge`` (profile ``aligned``): CLIP aligns text with images, CLAP text with sounds. The
  shared space is one tower's joint space (the *pivot*, CLAP by default). The pivot's own
  modalities enter unchanged (identity heads on unit vectors: scores are the model's own cosines);
  the other tower's modalities enter through a linear map fitted on text alone, the same
  sentences embedded by CLIP-text and CLAP-text (the collection's captions outside the test split,
  its label names, and the generic sentence list shipped with the package).
- ``class-names`` (profile ``offline``): EfficientNet-Lite0's ImageNet class probabilities weight
  MiniLM embeddings of "a photo of a {class name}" (1,000 names), which places an image in
  MiniLM's text space. The offline audio encoder has no text side: zero-shot audio is not
  available there (``unibind train --init`` adds it from labelled data).

The run has ordinary (linear / class-bridge) heads whose weights ARE these maps, so evaluate,
index, search, plot and report take it like a trained one; ``run.json`` says how it was made.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unibind.binding.bridge import Bridge, fit_bridge
from unibind.errors import UnibindError, UsageError
from unibind.features.folder import Features, load_features
from unibind.features.splits import assign_splits
from unibind.run.folder import save_run
from unibind.run.heads import Heads, HeadsConfig

log = logging.getLogger(__name__)

TOWER_OF = {"image": "clip", "audio": "clap"}  # text-bridge scheme: which tower owns a modality
PROMPT = "a photo of a {}"


class BindError(UnibindError):
    """Features that cannot be bound (no aligned encoders, missing views)."""


def embed_texts(spec: dict[str, Any], texts: list[str],
                cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """``texts`` through the encoder ``spec`` names, via the feature cache (a re-run is free)."""
    from unibind.encoders import EncoderSpec, load_encoder
    from unibind.encoders.spec import fingerprint
    from unibind.features.cache import FeatureCache, text_digest
    from unibind.util.runtime import cache_root

    spec_obj = EncoderSpec.from_dict(spec)
    cache = FeatureCache(Path(cache_dir) if cache_dir else cache_root() / "features",
                         fingerprint(spec_obj))
    digests = [text_digest(t) for t in texts]
    have = cache.get_many(set(digests))
    todo = sorted({t for t, d in zip(texts, digests) if d not in have})
    if todo:
        encoder = load_encoder(spec_obj)
        vecs = encoder.encode(todo)
        new = {text_digest(t): v for t, v in zip(todo, vecs)}
        cache.put_many(new)
        have.update(new)
    return np.stack([have[d] for d in digests]).astype(np.float32)


def scheme_of(feats: Features) -> str:
    """``text-bridge``, ``class-names``, or a BindError saying what bind needs."""
    if {"clip", "clap"} <= set(feats.views.get("text", [])):
        return "text-bridge"
    enc = feats.meta.get("encoders", {})
    backend = {m: (e.get("spec") or {}).get("backend") for m, e in enc.items()}
    if backend.get("image") == "efficientnet-lite" and backend.get("text") == "hf-text":
        return "class-names"
    raise BindError("bind needs features extracted with aligned encoders: --profile aligned "
                    "(CLIP + CLAP, text in two views) or --profile offline (ImageNet class-name "
                    f"bridge); these features have {backend or 'no encoders'}")


def _identity_linear(d: int) -> dict[str, torch.Tensor]:
    return {"1.weight": torch.eye(d), "1.bias": torch.zeros(d)}


def _bridge_linear(bridge: Bridge) -> dict[str, torch.Tensor]:
    return {"1.weight": torch.from_numpy(bridge.weight), "1.bias": torch.from_numpy(bridge.bias)}


def bridge_sentences(feats: Features, test_mask: np.ndarray, generic: bool = True
                     ) -> dict[str, list[str]]:
    """Sentences for the text bridge: captions outside the test split, labels, generic list."""
    from unibind.resources import generic_sentences

    items = feats.items
    is_text = (items["modality"] == "text").to_numpy() & ~test_mask
    labels = sorted({str(v).replace("_", " ").replace("-", " ").strip()
                     for v in items["label"].fillna("")} - {""})
    return {"captions_rows": items.loc[is_text, "row"].astype(int).tolist(),
            "labels": [PROMPT.format(v) for v in labels] + labels,
            "generic": generic_sentences() if generic else []}


def bind_text_bridge(feats: Features, pivot: str, method: str, test_mask: np.ndarray,
                     cache_dir: str | os.PathLike | None = None, generic: bool = True
                     ) -> tuple[Heads, dict[str, Any]]:
    """Heads of the text-bridge scheme: identity for the pivot's modalities, a text-fitted map
    for the other tower's."""
    other = "clip" if pivot == "clap" else "clap"
    views = feats.meta.get("views", {})
    sent = bridge_sentences(feats, test_mask, generic)
    extra = sent["labels"] + sent["generic"]
    rows = np.asarray(sent["captions_rows"], dtype=np.int64)
    src = {v: feats.arrays[f"text@{v}"][rows] for v in (pivot, other)}
    if extra:
        for v in (pivot, other):
            src[v] = np.concatenate([src[v], embed_texts(views[f"text@{v}"]["spec"], extra,
                                                         cache_dir)])
    bridge = fit_bridge(src[other], src[pivot], method=method)
    log.info("text bridge %s -> %s: %s on %d sentence pairs", other, pivot,
             bridge.info["method"], bridge.info["pairs"])
    dims = {"text": feats.dims[f"text@{pivot}"]}
    dims |= {m: feats.dims[m] for m in TOWER_OF if m in feats.arrays}
    embed_dim = dims["text"]
    kinds = {m: {"kind": "linear", "normalize_input": True} for m in dims}
    heads = Heads(HeadsConfig(dims=dims, embed_dim=embed_dim, hidden=0, kinds=kinds))
    state, how = {}, {"text": f"identity ({pivot.upper()} text tower)"}
    state["text"] = _identity_linear(embed_dim)
    for m in dims:
        if m == "text":
            continue
        if TOWER_OF[m] == pivot:
            state[m] = _identity_linear(embed_dim)
            how[m] = f"identity ({pivot.upper()} {m} tower)"
        else:
            state[m] = _bridge_linear(bridge)
            how[m] = (f"{other.upper()} -> {pivot.upper()} text bridge ({bridge.info['method']}, "
                      f"{bridge.info['pairs']} sentence pairs)")
    _load(heads, state)
    info = {"pivot": pivot, "views": {"text": pivot}, "heads": how, "bridge": bridge.info,
            "sentences": {"captions": int(len(rows)), "labels": len(sent["labels"]),
                          "generic": len(sent["generic"])}}
    return heads, info


def bind_class_names(feats: Features, temperature: float = 1.0,
                     cache_dir: str | os.PathLike | None = None) -> tuple[Heads, dict[str, Any]]:
    """Heads of the class-names scheme: text identity; image = softmax(ImageNet head) @ names."""
    from unibind.encoders import load_encoder
    from unibind.resources import imagenet_classes

    enc = feats.meta["encoders"]
    names = imagenet_classes()
    protos = embed_texts(enc["text"]["spec"], [PROMPT.format(n) for n in names], cache_dir)
    protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
    image_model = load_encoder(enc["image"]["spec"]).model
    fc = image_model._fc
    if fc.out_features != len(names):
        raise BindError(f"the image encoder's head has {fc.out_features} classes, not "
                        f"{len(names)} ImageNet classes")
    d_text = feats.dims["text"]
    dims = {"text": d_text}
    if "image" in feats.arrays:
        dims["image"] = feats.dims["image"]
    kinds = {"text": {"kind": "linear", "normalize_input": True},
             "image": {"kind": "class-bridge", "classes": len(names)}}
    heads = Heads(HeadsConfig(dims=dims, embed_dim=d_text, hidden=0,
                              kinds={m: k for m, k in kinds.items() if m in dims}))
    state = {"text": _identity_linear(d_text)}
    if "image" in dims:
        state["image"] = {"logits.weight": fc.weight.detach().float() / temperature,
                          "logits.bias": fc.bias.detach().float() / temperature,
                          "prototypes.weight": torch.from_numpy(protos.T.copy())}
    _load(heads, state)
    how = {"text": "identity (MiniLM text space)"}
    if "image" in dims:
        how["image"] = (f"ImageNet class probabilities (temperature {temperature:g}) over MiniLM "
                        f"embeddings of '{PROMPT.format('{class name}')}' ({len(names)} classes)")
    info = {"pivot": "text", "views": {}, "heads": how, "temperature": temperature}
    if "audio" in feats.arrays:
        info["not_available"] = {"audio": "the offline audio encoder (aisfx) has no text side, "
                                          "so zero-shot audio is not available in this profile; "
                                          "`unibind train --init RUN` adds audio from labelled "
                                          "or grouped data"}
    return heads, info


def _load(heads: Heads, state: dict[str, dict[str, torch.Tensor]]) -> None:
    flat = {f"proj.{m}.{k}": v.float() for m, sd in state.items() for k, v in sd.items()}
    flat["log_logit_scale"] = heads.log_logit_scale.detach().clone()
    heads.load_state_dict(flat)
    heads.eval()


def head_features(feats: Features, modalities: list[str]) -> Features:
    """Only the items and matrices of ``modalities`` (the ones a run has heads for)."""
    items = feats.items[feats.items["modality"].isin(modalities)].reset_index(drop=True)
    return Features(items=items, arrays={m: feats.arrays[m] for m in modalities},
                    meta=feats.meta, path=feats.path)


def bind(features: Features | str | os.PathLike, out: str | os.PathLike,
         pivot: str | None = None, method: str = "auto", temperature: float = 1.0,
         generic_sentences: bool = True, split_seed: int = 0, val: float = 0.1,
         test: float = 0.2, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write a bound run at ``out`` (see the module doc); returns a summary."""
    from unibind.eval.calibration import space_stats
    from unibind.features.folder import data_digest

    feats = features if isinstance(features, Features) else load_features(features)
    scheme = scheme_of(feats)
    split, split_info = assign_splits(feats.items, val, test, split_seed)
    split = split.to_numpy()
    if scheme == "text-bridge":
        pivot = pivot or "clap"
        if pivot not in ("clap", "clip"):
            raise UsageError(f"pivot {pivot!r}: the text-bridge space is CLAP's or CLIP's "
                             "(--pivot clap | clip)")
        heads, how = bind_text_bridge(feats, pivot, method, split == "test", cache_dir,
                                      generic_sentences)
    else:
        if pivot not in (None, "text"):
            raise UsageError(f"pivot {pivot!r}: offline features bind into the text space only")
        heads, how = bind_class_names(feats, temperature, cache_dir)
    viewed = feats.with_views(how["views"])
    sub = head_features(viewed, heads.modalities)
    stats = space_stats(heads, sub, split[viewed.items["modality"].isin(heads.modalities)])
    out = Path(out)
    fpath = None
    if feats.path is not None:
        fpath = os.path.relpath(Path(feats.path).resolve(), out.resolve())
    info = {"made_by": "bind", "preset": "bound",
            "bound": {"scheme": scheme, **how}, "views": how["views"],
            "encoders": {m: e for m, e in viewed.meta.get("encoders", {}).items()
                         if m in heads.modalities},
            "features": fpath, "synthetic": None, "config": None, "seed": 0,
            "data_digest": data_digest(feats), "modalities": heads.modalities,
            "split": split_info, "curve": [], "best_epoch": 0, "best_val_mAP@10": None,
            **{k: stats[k] for k in ("calibration", "calibration_pairs", "calibration_centered",
                                     "calibration_pairs_centered", "noise_pairs",
                                     "noise_pairs_centered")},
            "search": stats["search"]}
    save_run(out, heads, info, centers=stats["centers"])
    log.info("wrote bound run %s (%s, pivot %s)", out, scheme, how["pivot"])
    return {"run": str(out), "scheme": scheme, "pivot": how["pivot"], "heads": how["heads"],
            "modalities": heads.modalities, "not_available": how.get("not_available", {}),
            "bridge": how.get("bridge"), "split": split_info,
            "search": {k: stats["search"][k] for k in ("center", "mode")}}
