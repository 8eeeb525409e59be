"""Each modality described once: the registry every stage consults instead of branching on names."""

from __future__ import annotations

MODALITIES: tuple[str, ...] = ("text", "image", "audio")


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    return modality
