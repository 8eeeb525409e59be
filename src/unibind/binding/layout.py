"""Where each head of a bound run writes in the shared space, and what a query can reach.

A bound space is block-structured: the first block is the space shared with text (CLAP's or
CLIP's joint space, or MiniLM's text space offline); every modality whose encoder has no text
side (offline sounds, a registered modality with its own encoder) gets a block of its own,
entered unchanged (identity on unit vectors). Cross terms between blocks are exactly zero, so a
text query scores 0 against sounds of their own block: a search from text restricts to the
modalities of the text block, and ``reach`` (stored in ``run.json``) says so up front.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from unibind.modalities import ordered

# state-dict keys whose first axis is the head's output (padded into the full space)
OUTPUT_KEYS = ("1.weight", "1.bias", "prototypes.weight")


def block_reach(shared: Iterable[str], own: Iterable[str]) -> dict[str, list[str]]:
    """``shared`` modalities reach each other; each of ``own`` reaches only itself."""
    shared, own = ordered(shared), ordered(own)
    reach = {m: list(shared) for m in shared}
    reach |= {m: [m] for m in own}
    return {m: reach[m] for m in ordered(reach)}


def identity_block(d_in: int, offset: int, embed_dim: int) -> dict[str, torch.Tensor]:
    """A linear head (after input normalisation) copying its input into rows
    ``offset:offset + d_in`` of an ``embed_dim`` space (zeros elsewhere)."""
    weight = torch.zeros(embed_dim, d_in)
    weight[offset:offset + d_in] = torch.eye(d_in)
    return {"1.weight": weight, "1.bias": torch.zeros(embed_dim)}


def own_modalities(reach: dict[str, list[str]], modalities: Iterable[str]) -> list[str]:
    """The modalities of ``modalities`` outside the text block (text queries cannot reach
    them); every one when ``reach`` has no text entry."""
    shared = reach.get("text")
    return [] if shared is None else [m for m in modalities if m not in shared]


def trim_output(state: dict[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
    """A padded head's state cut back to the first ``width`` output rows (the text block)."""
    return {k: (v[:width] if k in OUTPUT_KEYS else v) for k, v in state.items()}


def pad_output(state: dict[str, torch.Tensor], embed_dim: int) -> dict[str, torch.Tensor]:
    """A head's state written for the first block, padded with zero rows to ``embed_dim``."""
    out = {}
    for key, value in state.items():
        if key in OUTPUT_KEYS and value.shape[0] < embed_dim:
            pad = torch.zeros((embed_dim - value.shape[0], *value.shape[1:]), dtype=value.dtype)
            value = torch.cat([value, pad])
        out[key] = value
    return out
