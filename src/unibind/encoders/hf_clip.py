"""Image backend over CLIP: the projected image features (``image_embeds``, 768-d for ViT-L/14).

Loads only the vision tower (``CLIPVisionModelWithProjection``) from a full CLIP checkpoint.
Images are decoded with Pillow (alpha composited on white) and preprocessed by the PIL CLIP
image processor (no torchvision needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

from unibind.encoders.base import Encoder, ItemError
from unibind.encoders.towers import ProjectedTower, load_tower
from unibind.features.media import MediaError, load_image


class HFClipImageEncoder(ProjectedTower, Encoder):
    modality = "image"

    def _load_model(self) -> torch.nn.Module:
        kwargs = {"revision": self.spec.revision} if self.spec.revision else {}
        self.processor = AutoImageProcessor.from_pretrained(self.spec.source, backend="pil",
                                                            **kwargs)
        return load_tower(CLIPVisionModelWithProjection, self.spec.source, "vision_config", kwargs)

    def load(self, item: Any) -> torch.Tensor:
        """Image file (or PIL image) -> preprocessed pixels ``[3, H, W]``."""
        if isinstance(item, Image.Image):
            image = item.convert("RGB")
        else:
            try:
                image = load_image(item, self.limits.max_pixels)
            except MediaError as exc:
                raise ItemError(item, str(exc)) from exc
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def forward(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor:
        pixels = torch.stack(list(decoded)).to(self.device, self.dtype)
        return self.model(pixel_values=pixels).image_embeds
