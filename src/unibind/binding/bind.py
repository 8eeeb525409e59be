"""features -> run with no training and no paired media: bind every modality to one space that
its encoders already share with text. The collection needs no text items: the profile's text
encoder is recorded for queries either way.

Two schemes, chosen from the encoders the features were extracted with (and their profile):

- ``text-bridge`` (profile ``aligned``): CLIP aligns text with images, CLAP text with sounds. The
  shared space is one tower's joint space (the *pivot*, CLAP by default). The pivot's own
  modalities enter unchanged (identity heads on unit vectors: scores are the model's own cosines);
  the other tower's modalities enter through a linear map fitted on text alone, the same
  sentences embedded by CLIP-text and CLAP-text (the collection's captions outside the test split,
  its label names, and the generic sentence list shipped with the package).
- ``class-names`` (profile ``offline``): EfficientNet-Lite0's ImageNet class probabilities weight
  MiniLM embeddings of "a photo of a {class name}" (1,000 names), which places an image in
  MiniLM's text space.

A modality whose encoder has no text side (the offline audio encoder, aisfx) gets a block of its
own in the space (``unibind.binding.layout``): its items are searchable by queries of their own
kind (sound -> sound) and unreachable by text; ``run.json`` ``reach`` says which query modality
reaches which (``unibind train --init RUN`` ties such a modality to text from labelled data).

The run has ordinary (linear / class-bridge) heads whose weights ARE these maps, so evaluate,
index, search, plot and report take it like a trained one; ``run.json`` says how it was made.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unibind.binding.bridge import Bridge, fit_bridge
from unibind.binding.layout import block_reach, identity_block, pad_output
from unibind.errors import UnibindError, UsageError
from unibind.features.folder import Features, load_features
from unibind.features.splits import assign_splits
from unibind.modalities import ordered
from unibind.run.folder import save_run
from unibind.run.heads import Heads, HeadsConfig

log = logging.getLogger(__name__)

TOWERS = {"hf-clip": "clip", "hf-clap": "clap"}  # media backend -> the text view sharing its space
PROMPT = "a photo of a {}"
OWN_SPACE_HINT = ("`unibind train --init RUN` ties it to text from labelled or grouped data")


class BindError(UnibindError):
    """Features that cannot be bound (no aligned encoders, missing views)."""


@dataclass
class TextBlock:
    """The heads of the block shared with text, before own-space modalities are added."""

    embed_dim: int
    dims: dict[str, int]
    kinds: dict[str, dict[str, Any]]
    state: dict[str, dict[str, torch.Tensor]]
    how: dict[str, str]
    info: dict[str, Any]
    text_encoder: dict[str, Any]
    text_sample: np.ndarray  # text-encoder features of sentences (the text centre without items)
    views: dict[str, str] = field(default_factory=dict)


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


def backend_of(feats: Features, modality: str) -> str | None:
    """The encoder backend ``modality``'s items were extracted with (None: no such items)."""
    entry = feats.meta.get("encoders", {}).get(modality) or {}
    return (entry.get("spec") or {}).get("backend")


def text_encoder(feats: Features, key: str = "text") -> dict[str, Any] | None:
    """The encoder entry (spec, identity, fingerprint, dim) of the text side ``key`` (``text``,
    or a view such as ``text@clip``): the features' own when they hold text items, else the one
    of the profile they were extracted with (queries need it with or without text items)."""
    from unibind.encoders.profiles import resolve_profile
    from unibind.encoders.spec import fingerprint, identity, pin

    meta = feats.meta
    if key == "text" and "text" in meta.get("encoders", {}):
        return dict(meta["encoders"]["text"])
    if key in meta.get("views", {}):
        return dict(meta["views"][key])
    profile = meta.get("profile")
    if "text" in feats.modalities or not profile:
        return None
    try:
        specs = resolve_profile(profile)
    except UnibindError as exc:
        raise BindError(f"the text encoder of profile {profile!r} (the features' profile) is "
                        f"needed for text queries: {exc}") from exc
    if key not in specs:
        return None
    spec = pin(specs[key])
    return {"spec": spec.to_dict(), "identity": identity(spec), "fingerprint": fingerprint(spec),
            "dim": None}


def scheme_of(feats: Features) -> str:
    """``text-bridge``, ``class-names``, or a BindError saying what bind needs."""
    if all(text_encoder(feats, f"text@{tower}") for tower in ("clip", "clap")):
        return "text-bridge"
    text = text_encoder(feats)
    offline = backend_of(feats, "image") == "efficientnet-lite" or (
        feats.meta.get("profile") == "offline" and "image" not in feats.modalities)
    if text and (text.get("spec") or {}).get("backend") == "hf-text" and offline:
        return "class-names"
    backends = {m: backend_of(feats, m) for m in feats.modalities}
    raise BindError("bind needs features extracted with aligned encoders: --profile aligned "
                    "(CLIP + CLAP, text in two views) or --profile offline (ImageNet class-name "
                    f"bridge); these features have {backends or 'no encoders'}")


def _identity_linear(d: int) -> dict[str, torch.Tensor]:
    return {"1.weight": torch.eye(d), "1.bias": torch.zeros(d)}


def _bridge_linear(bridge: Bridge) -> dict[str, torch.Tensor]:
    return {"1.weight": torch.from_numpy(bridge.weight), "1.bias": torch.from_numpy(bridge.bias)}


def bridge_sentences(feats: Features, test_mask: np.ndarray, generic: bool = True
                     ) -> dict[str, list]:
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
                     ) -> TextBlock:
    """The text block of the text-bridge scheme: identity for the pivot's modalities, a
    text-fitted map for the other tower's (fitted only when such items are present)."""
    other = "clip" if pivot == "clap" else "clap"
    enc = {v: text_encoder(feats, f"text@{v}") for v in (pivot, other)}
    towers = {m: TOWERS[b] for m in feats.modalities if m != "text"
              if (b := backend_of(feats, m)) in TOWERS}
    need_bridge = other in towers.values()
    sent = bridge_sentences(feats, test_mask, generic)
    extra = sent["labels"] + sent["generic"] or [PROMPT.format("thing")]
    rows = np.asarray(sent["captions_rows"], dtype=np.int64)
    src = {}
    for v in (pivot, other) if need_bridge else (pivot,):
        own = [feats.arrays[f"text@{v}"][rows]] if "text" in feats.modalities else []
        src[v] = np.concatenate([*own, embed_texts(enc[v]["spec"], extra, cache_dir)])
    embed_dim = int(src[pivot].shape[1])
    bridge = None
    if need_bridge:
        bridge = fit_bridge(src[other], src[pivot], method=method)
        log.info("text bridge %s -> %s: %s on %d sentence pairs", other, pivot,
                 bridge.info["method"], bridge.info["pairs"])
    dims = {"text": embed_dim} | {m: feats.dims[m] for m in towers}
    kinds = {m: {"kind": "linear", "normalize_input": True} for m in dims}
    state = {"text": _identity_linear(embed_dim)}
    how = {"text": f"identity ({pivot.upper()} text tower)"}
    for m, tower in towers.items():
        if tower == pivot:
            state[m] = _identity_linear(embed_dim)
            how[m] = f"identity ({pivot.upper()} {m} tower)"
        else:
            state[m] = _bridge_linear(bridge)
            how[m] = (f"{other.upper()} -> {pivot.upper()} text bridge ({bridge.info['method']}, "
                      f"{bridge.info['pairs']} sentence pairs)")
    info = {"pivot": pivot, "bridge": None if bridge is None else bridge.info,
            "sentences": {"captions": int(len(rows)) if "text" in feats.modalities else 0,
                          "labels": len(sent["labels"]), "generic": len(sent["generic"])}}
    return TextBlock(embed_dim, dims, kinds, state, how, info, {**enc[pivot], "dim": embed_dim},
                     src[pivot], views={"text": pivot})


def bind_class_names(feats: Features, temperature: float = 1.0,
                     cache_dir: str | os.PathLike | None = None) -> TextBlock:
    """The text block of the class-names scheme: text identity; image = softmax(ImageNet head)
    @ names."""
    from unibind.encoders import load_encoder
    from unibind.resources import imagenet_classes

    text = text_encoder(feats)
    names = imagenet_classes()
    protos = embed_texts(text["spec"], [PROMPT.format(n) for n in names], cache_dir)
    d_text = int(protos.shape[1])
    dims, kinds = {"text": d_text}, {"text": {"kind": "linear", "normalize_input": True}}
    state = {"text": _identity_linear(d_text)}
    how = {"text": "identity (MiniLM text space)"}
    if backend_of(feats, "image") == "efficientnet-lite":
        fc = load_encoder(feats.meta["encoders"]["image"]["spec"]).model._fc
        if fc.out_features != len(names):
            raise BindError(f"the image encoder's head has {fc.out_features} classes, not "
                            f"{len(names)} ImageNet classes")
        unit = protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-12)
        dims["image"] = feats.dims["image"]
        kinds["image"] = {"kind": "class-bridge", "classes": len(names)}
        state["image"] = {"logits.weight": fc.weight.detach().float() / temperature,
                          "logits.bias": fc.bias.detach().float() / temperature,
                          "prototypes.weight": torch.from_numpy(unit.T.copy())}
        how["image"] = (f"ImageNet class probabilities (temperature {temperature:g}) over MiniLM "
                        f"embeddings of '{PROMPT.format('{class name}')}' ({len(names)} classes)")
    info = {"pivot": "text", "temperature": temperature}
    return TextBlock(d_text, dims, kinds, state, how, info, {**text, "dim": d_text}, protos)


def assemble(block: TextBlock, feats: Features) -> tuple[Heads, dict[str, Any]]:
    """Heads over the whole space: the text block first, then one own block per modality of
    ``feats`` that has no text side; returns the heads and ``{"reach", "how", "unreachable"}``."""
    own = [m for m in feats.modalities if m not in block.dims]
    embed_dim = block.embed_dim + sum(feats.dims[m] for m in own)
    dims = {**block.dims, **{m: feats.dims[m] for m in own}}
    kinds = {**block.kinds, **{m: {"kind": "linear", "normalize_input": True} for m in own}}
    order = ordered(dims)
    heads = Heads(HeadsConfig(dims={m: dims[m] for m in order}, embed_dim=embed_dim, hidden=0,
                              kinds={m: kinds[m] for m in order}))
    state = {m: pad_output(s, embed_dim) for m, s in block.state.items()}
    how, unreachable, offset = dict(block.how), {}, block.embed_dim
    for m in own:
        state[m] = identity_block(dims[m], offset, embed_dim)
        how[m] = f"own space (identity, dims {offset}-{offset + dims[m] - 1})"
        unreachable[m] = (f"its encoder ({backend_of(feats, m) or 'unknown'}) has no text side: "
                          f"{m} items are found by {m} queries only; {OWN_SPACE_HINT}")
        offset += dims[m]
    _load(heads, state)
    return heads, {"reach": block_reach(block.dims, own), "how": {m: how[m] for m in order},
                   "unreachable": unreachable}


def _load(heads: Heads, state: dict[str, dict[str, torch.Tensor]]) -> None:
    flat = {f"proj.{m}.{k}": v.float() for m, sd in state.items() for k, v in sd.items()}
    flat["log_logit_scale"] = heads.log_logit_scale.detach().clone()
    heads.load_state_dict(flat)
    heads.eval()


def head_features(feats: Features, modalities: list[str]) -> Features:
    """Only the items and matrices of ``modalities`` (the ones a run has heads for) that
    ``feats`` holds."""
    have = [m for m in modalities if m in feats.arrays]
    items = feats.items[feats.items["modality"].isin(have)].reset_index(drop=True)
    return Features(items=items, arrays={m: feats.arrays[m] for m in have},
                    meta=feats.meta, path=feats.path)


def with_sentences(feats: Features, split: np.ndarray, sample: np.ndarray
                   ) -> tuple[Features, np.ndarray]:
    """``feats`` plus the text-encoder features of the bridge sentences as training-split text
    items, so a collection without text still gets a text centre and text-query statistics."""
    items = pd.DataFrame({"id": [f"sentence-{i}" for i in range(len(sample))],
                          "modality": "text", "label": "", "group": "", "split": "",
                          "path": "", "text": "", "row": np.arange(len(sample))})
    out = Features(items=pd.concat([feats.items, items], ignore_index=True),
                   arrays={**feats.arrays, "text": sample}, meta=feats.meta, path=feats.path)
    return out, np.concatenate([split, np.full(len(sample), "train", dtype=object)])


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
        block = bind_text_bridge(feats, pivot, method, split == "test", cache_dir,
                                 generic_sentences)
    else:
        if pivot not in (None, "text"):
            raise UsageError(f"pivot {pivot!r}: offline features bind into the text space only")
        block = bind_class_names(feats, temperature, cache_dir)
    heads, layout = assemble(block, feats)
    viewed = feats.with_views({m: v for m, v in block.views.items() if m in feats.modalities})
    sub = head_features(viewed, heads.modalities)
    sub_split = split[viewed.items["modality"].isin(heads.modalities).to_numpy()]
    if "text" not in sub.arrays:  # no text items: text-side statistics from the sentences
        sub, sub_split = with_sentences(sub, sub_split, block.text_sample)
    stats = space_stats(heads, sub, sub_split)
    centers = dict(stats["centers"])
    encoders = {m: e for m, e in viewed.meta.get("encoders", {}).items()
                if m in heads.modalities}
    encoders["text"] = encoders.get("text") or block.text_encoder
    out = Path(out)
    fpath = None
    if feats.path is not None:
        fpath = os.path.relpath(Path(feats.path).resolve(), out.resolve())
    bound = {"scheme": scheme, **block.info, "views": block.views, "heads": layout["how"],
             "unreachable": layout["unreachable"]}
    info = {"made_by": "bind", "preset": "bound", "bound": bound, "views": block.views,
            "encoders": {m: encoders[m] for m in heads.modalities if m in encoders},
            "reach": layout["reach"],
            "features": fpath, "synthetic": None, "config": None, "seed": 0,
            "data_digest": data_digest(feats), "modalities": heads.modalities,
            "split": split_info, "curve": [], "best_epoch": 0, "best_val_mAP@10": None,
            **{k: stats[k] for k in ("calibration", "calibration_pairs", "calibration_centered",
                                     "calibration_pairs_centered", "noise_pairs",
                                     "noise_pairs_centered")},
            "search": stats["search"]}
    save_run(out, heads, info, centers=centers)
    log.info("wrote bound run %s (%s, pivot %s)", out, scheme, block.info["pivot"])
    return {"run": str(out), "scheme": scheme, "pivot": block.info["pivot"],
            "heads": layout["how"], "modalities": heads.modalities, "reach": layout["reach"],
            "unreachable": layout["unreachable"], "bridge": block.info.get("bridge"),
            "split": split_info, "search": {k: stats["search"][k] for k in ("center", "mode")}}
