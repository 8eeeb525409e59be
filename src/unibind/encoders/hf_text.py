"""Text backend over ``transformers`` BERT-family models (``AutoModel`` + tokenizer).

Options: ``pooling`` = "pooler" (BERT's pooler output, as the reference used), "cls" or "mean"
(over the attention mask, as sentence-transformers does); ``max_length`` truncates (tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from unibind.encoders.base import Encoder, ItemError, local_config_value
from unibind.encoders.spec import EncoderSpec
from unibind.encoders.towers import quiet_transformers
from unibind.errors import UsageError

POOLINGS = ("pooler", "cls", "mean")


class TextItems:
    """What every tokenizer-based text backend shares: items are non-empty strings, sorted by
    length, tokenised in ``collate`` (extraction's workers, off the main loop). Needs
    ``self.tokenizer`` and ``self.max_length``; ``token_keys`` keeps only the inputs the model
    takes (None: all the tokenizer returns)."""

    modality = "text"
    token_keys: tuple[str, ...] | None = None

    def load(self, item: Any) -> str:
        if not isinstance(item, str) or not item.strip():
            raise ItemError(item, "empty text")
        return item

    def sort_key(self, decoded: str) -> int:
        return -len(decoded)

    def collate(self, decoded: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise (the fast tokenizer releases the GIL: done in extraction's workers)."""
        batch = self.tokenizer(list(decoded), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        keys = self.token_keys or tuple(batch)
        return {k: batch[k] for k in keys if k in batch}


class HFTextEncoder(TextItems, Encoder):
    """Text -> a transformers encoder's pooled output (``pooler``, ``cls`` or ``mean``)."""

    def _load_model(self) -> torch.nn.Module:
        self.pooling = self.spec.options.get("pooling", "pooler")
        if self.pooling not in POOLINGS:
            raise UsageError(f"text pooling {self.pooling!r} not in {POOLINGS}")
        self.max_length = int(self.spec.options.get("max_length", 512))
        kwargs = {"revision": self.spec.revision} if self.spec.revision else {}
        self.tokenizer = AutoTokenizer.from_pretrained(self.spec.source, **kwargs)
        add_pool = self.pooling == "pooler"
        with quiet_transformers():  # an unused pooler's weights are skipped on purpose
            model = AutoModel.from_pretrained(self.spec.source, add_pooling_layer=add_pool,
                                              **kwargs)
        if add_pool and getattr(model, "pooler", None) is None:
            raise UsageError(f"{self.spec.source} has no pooler; use pooling 'cls' or 'mean'")
        return model

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @classmethod
    def config_dim(cls, spec: EncoderSpec) -> int | None:
        return local_config_value(spec, "hidden_size")


    def forward_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = self.to_device(batch)
        out = self.model(**batch)
        if self.pooling == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
