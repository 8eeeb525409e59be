"""Text backends over the text towers of CLIP and CLAP: projected text features.

``hf-clip-text`` gives ``CLIPTextModelWithProjection``'s ``text_embeds`` (768-d for ViT-L/14),
``hf-clap-text`` gives ``ClapTextModelWithProjection``'s (512-d for larger_clap_general): the text
side of each model's joint space, so that a caption's vector is directly comparable (cosine) with
the same checkpoint's image (``hf-clip``) or audio (``hf-clap``) vectors. Both towers load from a
full two-tower checkpoint (the other tower's weights are skipped). Texts are truncated to what the
model's positions allow (CLIP: 77 tokens; CLAP/RoBERTa: 512).
"""

from __future__ import annotations

import torch
from transformers import AutoTokenizer, ClapTextModelWithProjection, CLIPTextModelWithProjection

from unibind.encoders.base import Encoder
from unibind.encoders.hf_text import TextItems
from unibind.encoders.towers import ProjectedTower, load_tower


class _TextTower(TextItems, ProjectedTower, Encoder):
    token_keys = ("input_ids", "attention_mask")
    model_cls: type = CLIPTextModelWithProjection
    position_offset = 0  # positions a model reserves (RoBERTa: padding_idx + 1)

    def _load_model(self) -> torch.nn.Module:
        kwargs = {"revision": self.spec.revision} if self.spec.revision else {}
        self.tokenizer = AutoTokenizer.from_pretrained(self.spec.source, **kwargs)
        model = load_tower(self.model_cls, self.spec.source, "text_config", kwargs)
        limit = int(model.config.max_position_embeddings) - self.position_offset
        self.max_length = min(int(self.spec.options.get("max_length", limit)), limit,
                              int(self.tokenizer.model_max_length))
        return model

    def forward_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**self.to_device(batch)).text_embeds


class HFClipTextEncoder(_TextTower):
    """Text -> CLIP's projected text embeddings (the text side of CLIP's joint space)."""
    model_cls = CLIPTextModelWithProjection


class HFClapTextEncoder(_TextTower):
    """Text -> CLAP's projected text embeddings (the text side of CLAP's joint space)."""
    model_cls = ClapTextModelWithProjection
    position_offset = 2
