"""Image backend over CLIP: the projected image features (``image_embeds``, 768-d for ViT-L/14).

Loads only the vision tower (``CLIPVisionModelWithProjection``) from a full CLIP checkpoint.
Images are decoded with Pillow (alpha composited on white) and preprocessed by the PIL CLIP
image processor (no torchvision needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

from unibind.encoders.base import Encoder
from unibind.encoders.inputs import rgb_image
from unibind.encoders.towers import ProjectedTower, load_tower


class HFClipImageEncoder(ProjectedTower, Encoder):
    modality = "image"

    def _load_model(self) -> torch.nn.Module:
        kwargs = {"revision": self.spec.revision} if self.spec.revision else {}
        self.processor = AutoImageProcessor.from_pretrained(self.spec.source, backend="pil",
                                                            **kwargs)
        return load_tower(CLIPVisionModelWithProjection, self.spec.source, "vision_config", kwargs)

    def load(self, item: Any) -> torch.Tensor:
        """Image file (or PIL image, or HxWx3 array) -> preprocessed pixels ``[3, H, W]``."""
        image = rgb_image(item, self.limits)
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def forward(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor:
        pixels = torch.stack(list(decoded)).to(self.device, self.dtype)
        return self.model(pixel_values=pixels).image_embeds
