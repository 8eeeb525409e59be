"""Image backend over CLIP: the projected image features (``image_embeds``, 768-d for ViT-L/14).

Loads only the vision tower (``CLIPVisionModelWithProjection``) from a full CLIP checkpoint.
Images are decoded with Pillow (alpha composited on white) and preprocessed by the PIL CLIP
image processor (no torchvision needed).

Option ``preprocess: device``: decode to uint8 (JPEGs at reduced size via Pillow's draft mode,
never below the model's input size), then resize (bicubic, antialiased) / centre-crop / normalise
in torch on the model's device. Close to the processor's output (tested), not bit-identical, so
the option is part of the encoder fingerprint and has its own cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

from unibind.encoders.base import Encoder
from unibind.encoders.inputs import rgb_image
from unibind.encoders.towers import ProjectedTower, load_tower
from unibind.errors import UsageError

PREPROCESS = ("host", "device")


class HFClipImageEncoder(ProjectedTower, Encoder):
    """Images -> CLIP's projected image embeddings (``get_image_features``)."""
    modality = "image"

    def _load_model(self) -> torch.nn.Module:
        kwargs = {"revision": self.spec.revision} if self.spec.revision else {}
        self.preprocess = self.spec.options.get("preprocess", "host")
        if self.preprocess not in PREPROCESS:
            raise UsageError(f"image preprocess {self.preprocess!r} not in {PREPROCESS}")
        self.processor = AutoImageProcessor.from_pretrained(self.spec.source, backend="pil",
                                                            **kwargs)
        return load_tower(CLIPVisionModelWithProjection, self.spec.source, "vision_config", kwargs)

    def load(self, item: Any) -> torch.Tensor:
        """Image file (or PIL image, or HxWx3 array) -> preprocessed pixels ``[3, H, W]``
        (uint8 ``[3, h, w]`` with ``preprocess: device``)."""
        draft = (self.short_edge,) * 2 if self.preprocess == "device" else None
        image = rgb_image(item, self.limits, draft=draft)
        if self.preprocess == "device":
            return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]

    @property
    def short_edge(self) -> int:
        size = self.processor.size
        return int(size.get("shortest_edge") or min(size["height"], size["width"]))

    def collate(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        return list(decoded) if self.preprocess == "device" else torch.stack(list(decoded))

    def forward_batch(self, batch: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(batch, list):
            pixels = torch.stack([self.pixels_on_device(x) for x in batch]).to(self.dtype)
        else:
            pixels = batch.to(self.device, self.dtype, non_blocking=True)
        return self.model(pixel_values=pixels).image_embeds

    def pixels_on_device(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``[3, h, w]`` -> float32 ``[3, crop, crop]`` as the CLIP processor makes it."""
        p = self.processor
        x = image.to(self.device, non_blocking=True).float().unsqueeze(0)
        h, w = x.shape[-2:]
        short = self.short_edge
        if p.do_resize:
            size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
            x = torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True,
                                                align_corners=False).clamp_(0, 255)
            x = x.round_()  # the processor resizes uint8 images
        if p.do_center_crop:
            ch, cw = p.crop_size["height"], p.crop_size["width"]
            h, w = x.shape[-2:]
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            x = x[..., top:top + ch, left:left + cw]
        if p.do_rescale:
            x = x * p.rescale_factor
        if p.do_normalize:
            mean = torch.tensor(p.image_mean, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(p.image_std, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x[0]
