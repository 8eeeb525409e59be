"""Zero-shot classification: each item's nearest class prompt in the shared space.

A class prompt is the label's text (``"dog_bark"`` -> ``"dog bark"``) embedded by the run's text
encoder and text head. A features set may instead carry the text features of its class prompts
in its meta (``meta["class_prompts"] = {"names": [...], "features": [[...]]}``, written e.g. by
the synthetic generator, whose "text encoder" cannot embed new text).
"""

from __future__ import annotations

import logging

import numpy as np

from unibind.eval.metrics import zero_shot_accuracy
from unibind.features.folder import Features
from unibind.run.folder import Run, RunError

log = logging.getLogger(__name__)

NOTE = "nearest class prompt (label text through the text encoder and head)"


def prompt_text(label: str) -> str:
    """A label as a class prompt: underscores and hyphens become spaces."""
    return label.replace("_", " ").replace("-", " ").strip()


def class_prompts(run: Run, feats: Features, names: list[str]) -> tuple[list[str], np.ndarray]:
    """Class prompt vectors in the shared space (text head applied); raises when unavailable."""
    stored = feats.meta.get("class_prompts")
    if stored:
        names, vecs = list(stored["names"]), np.asarray(stored["features"], dtype=np.float32)
    else:
        enc_info = run.encoders.get("text")
        if not enc_info or "spec" not in enc_info:
            raise RunError("the run records no text encoder spec")
        from unibind.encoders import load_encoder  # imported lazily: loading a model is heavy

        vecs = load_encoder(enc_info["spec"]).encode([prompt_text(n) for n in names])
    return names, run.project("text", vecs)


def zero_shot(run: Run, feats: Features, embs: dict[str, np.ndarray],
              labels: dict[str, np.ndarray]) -> tuple[dict[str, float], str]:
    """``({modality: accuracy}, note)``; skipped (with the reason as note) when the prompts cannot
    be embedded."""
    if "text" not in run.modalities:
        return {}, "skipped: the run has no text head"
    names = sorted(set(feats.items["label"].astype(str)))
    try:
        names, prompts = class_prompts(run, feats, names)
    except Exception as exc:  # a missing/unloadable encoder must not sink the evaluation
        log.warning("zero-shot skipped: cannot embed class prompts (%s)", exc)
        return {}, f"skipped: {exc}"
    return {m: zero_shot_accuracy(e, labels[m], prompts, names) for m, e in embs.items()}, NOTE
