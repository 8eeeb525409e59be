"""One caption per image with a Hugging Face vision-language model, cached and resumable.

Backends:
- ``generic``: any image-to-text model loadable with ``AutoProcessor`` +
  ``AutoModelForImageTextToText`` (e.g. ``Salesforce/blip-image-captioning-base``), batched
  ``generate``; a prompt goes through the processor's chat template when it has one, else as a
  text prefix (BLIP: conditional captioning).
- ``minicpm``: the reference model ``openbmb/MiniCPM-Llama3-V-2_5-int4`` (remote code, CUDA for
  int4): ``model.chat(image=..., msgs=[{"role": "user", "content": prompt}], tokenizer=...)``,
  one image per call. Its remote code targets the transformers version on its model card.

Each caption is stored under a key of (model identity, backend, prompt, generation settings, image
content digest) as one small JSON file, written atomically as soon as its batch is done: a re-run
computes only what is missing and does not load the model when nothing is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from unibind.data.manifest import read_manifest, write_manifest
from unibind.errors import UnibindError
from unibind.util.digests import file_digest
from unibind.util.jsonio import read_json, write_json_atomic
from unibind.util.runtime import cache_root, pick_device, pick_dtype

log = logging.getLogger(__name__)

REFERENCE_MODEL = "openbmb/MiniCPM-Llama3-V-2_5-int4"
REFERENCE_PROMPT = "Give me a comprehensive description of this image"
BACKENDS = ("auto", "generic", "minicpm")
Captioner = Callable[[list[Image.Image]], list[str]]


class CaptionError(UnibindError, RuntimeError):
    """A captioning setup that cannot run (unknown backend, remote code not allowed, ...)."""


@dataclass(frozen=True)
class CaptionConfig:
    """What determines a caption besides the image."""

    model: str
    prompt: str | None = None
    revision: str | None = None
    backend: str = "auto"
    max_new_tokens: int | None = None  # None: 64 (generic) or 512 (minicpm: long descriptions)
    num_beams: int = 1
    trust_remote_code: bool = False

    def resolved(self) -> CaptionConfig:
        """Backend chosen (``auto``: minicpm for MiniCPM ids) and its default prompt filled in."""
        if self.backend not in BACKENDS:
            raise CaptionError(f"unknown caption backend {self.backend!r}; choose {BACKENDS}")
        backend = self.backend
        if backend == "auto":
            backend = "minicpm" if "minicpm" in self.model.lower() else "generic"
        prompt = self.prompt
        if backend == "minicpm" and not prompt:
            prompt = REFERENCE_PROMPT
        tokens = self.max_new_tokens or (512 if backend == "minicpm" else 64)
        return CaptionConfig(self.model, prompt or None, self.revision, backend, tokens,
                             self.num_beams, self.trust_remote_code)


def model_identity(model: str, revision: str | None) -> dict[str, str]:
    """A local folder by content digest, a hub id by its commit (``pinned`` resolves it first;
    an unpinned revision is looked up in the local hub cache)."""
    from unibind.encoders.spec import folder_digest, hub_revision

    if Path(model).expanduser().exists():
        return {"content": folder_digest(model)}
    return {"source": model, "revision": hub_revision(model, revision)}


def pinned(cfg: CaptionConfig) -> CaptionConfig:
    """``cfg`` with a hub model's revision resolved to its commit, before any download."""
    if Path(cfg.model).expanduser().exists():
        return cfg
    from unibind.encoders.spec import resolve_hub_revision

    return replace(cfg, revision=resolve_hub_revision(cfg.model, cfg.revision))


class CaptionCache:
    """``root/<k[:2]>/<k>.json`` per caption; each file written atomically."""

    def __init__(self, root: str | os.PathLike, cfg: CaptionConfig):
        self.root = Path(root)
        settings = asdict(cfg)
        settings.pop("trust_remote_code")
        settings.pop("model")
        settings.pop("revision")
        self.namespace = {"model": model_identity(cfg.model, cfg.revision), **settings}

    def key(self, image_digest: str) -> str:
        payload = json.dumps({**self.namespace, "image": image_digest}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, image_digest: str) -> str | None:
        path = self._path(self.key(image_digest))
        if not path.is_file():
            return None
        try:
            return read_json(path)["caption"]
        except (ValueError, KeyError) as exc:  # damaged entry: recompute it
            log.warning("ignoring unreadable caption cache entry %s: %s", path, exc)
            return None

    def put(self, image_digest: str, caption: str, item_id: str) -> None:
        write_json_atomic(self._path(self.key(image_digest)),
                          {"caption": caption, "image": image_digest, "first_id": item_id,
                           **self.namespace})


def _dtype_kwarg(dtype) -> dict[str, Any]:
    """``dtype=`` for transformers 5, ``torch_dtype=`` before."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"dtype" if major >= 5 else "torch_dtype": dtype}


def _generic(cfg: CaptionConfig, device, dtype) -> Captioner:
    import torch
    import transformers
    from transformers import AutoProcessor

    auto = getattr(transformers, "AutoModelForImageTextToText", None) or getattr(
        transformers, "AutoModelForVision2Seq")
    kwargs: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    processor = AutoProcessor.from_pretrained(cfg.model, **kwargs)
    model = auto.from_pretrained(cfg.model, **kwargs, **_dtype_kwarg(dtype))
    model = model.to(device).eval()
    tokenizer = getattr(processor, "tokenizer", None)
    text = None
    if cfg.prompt:
        text = cfg.prompt
        if getattr(processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": cfg.prompt}]}]
            text = processor.apply_chat_template(messages, add_generation_prompt=True)
            if tokenizer is not None and not model.config.is_encoder_decoder:
                tokenizer.padding_side = "left"  # batched generation of a decoder-only model

    def caption(images: list[Image.Image]) -> list[str]:
        call: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if text is not None:
            call.update(text=[text] * len(images), padding=True)
        inputs = processor(**call).to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=cfg.max_new_tokens,
                                 num_beams=cfg.num_beams, do_sample=False)
        rows = []
        prompt_ids = inputs.get("input_ids")
        for i in range(len(images)):
            seq = out[i]
            if prompt_ids is not None:  # decoder-only models echo the prompt: drop it
                n = prompt_ids.shape[1]
                if len(seq) >= n and torch.equal(seq[:n], prompt_ids[i]):
                    seq = seq[n:]
            rows.append(seq)
        return [s.strip() for s in processor.batch_decode(rows, skip_special_tokens=True)]

    return caption


def _minicpm(cfg: CaptionConfig, device, dtype) -> Captioner:
    """The reference model's own chat API (remote code); one image per call."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    kwargs: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": True}
    config = AutoConfig.from_pretrained(cfg.model, **kwargs)
    model = AutoModel.from_pretrained(cfg.model, **kwargs, **_dtype_kwarg(dtype))
    if getattr(config, "quantization_config", None) is None:
        model = model.to(device)  # int4 (bitsandbytes) weights are placed on load
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(cfg.model, **kwargs)

    def caption(images: list[Image.Image]) -> list[str]:
        out = []
        for image in images:
            msgs = [{"role": "user", "content": cfg.prompt}]
            res = model.chat(image=image, msgs=msgs, tokenizer=tokenizer, sampling=False,
                             max_new_tokens=cfg.max_new_tokens)
            out.append((res[0] if isinstance(res, tuple) else res).strip())
        return out

    return caption


def load_captioner(cfg: CaptionConfig, device: str | None = None,
                   dtype: str | None = None) -> Captioner:
    """A function from a batch of RGB images to their captions."""
    cfg = cfg.resolved()
    if cfg.backend == "minicpm" and not cfg.trust_remote_code:
        raise CaptionError(f"{cfg.model} runs code from its model repository; allow it with "
                           "--trust-remote-code (trust_remote_code=True)")
    dev = pick_device(device)
    dt = pick_dtype(dev, dtype)
    log.info("loading caption model %s (%s backend) on %s", cfg.model, cfg.backend, dev)
    return (_minicpm if cfg.backend == "minicpm" else _generic)(cfg, dev, dt)


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def _run_batch(captioner: Captioner, batch: list[tuple[dict, Image.Image]]) -> list:
    """Captions of a batch; on failure each item alone, a failing one as its exception."""
    try:
        return list(captioner([img for _, img in batch]))
    except Exception as exc:
        if len(batch) == 1:
            return [exc]
        log.warning("batch failed (%s); captioning its %d items one by one", exc, len(batch))
        out: list = []
        for item in batch:
            out.extend(_run_batch(captioner, [item]))
        return out


def caption_manifest(manifest: str | os.PathLike, cfg: CaptionConfig,
                     out: str | os.PathLike | None = None, *,
                     cache_dir: str | os.PathLike | None = None, batch_size: int = 8,
                     device: str | None = None, dtype: str | None = None, progress: bool = True,
                     captioner: Captioner | None = None) -> dict:
    """Caption every image of ``manifest``; write text items (the image's label, group and split)
    to ``out`` (default ``captions.parquet`` beside the manifest) and return a summary."""
    from tqdm import tqdm

    cfg = cfg.resolved()
    if captioner is None:  # the same commit for the cache key and the download
        cfg = pinned(cfg)
    m = read_manifest(manifest)
    images = m.table[m.table["modality"] == "image"]
    if images.empty:
        raise CaptionError(f"{manifest}: no image items to caption")
    out = Path(out) if out is not None else Path(manifest).parent / "captions.parquet"
    cache = CaptionCache(Path(cache_dir) if cache_dir else cache_root() / "captions", cfg)
    errors: list[dict] = []
    captions: dict[str, str] = {}
    todo: list[tuple[dict, str]] = []
    for row in images.to_dict("records"):
        digest = file_digest(m.resolve(row["path"]))
        hit = cache.get(digest)
        if hit is not None:
            captions[row["id"]] = hit
        else:
            todo.append((row, digest))
    cached = len(captions)
    log.info("%d image(s): %d cached, %d to caption with %s", len(images), cached, len(todo),
             cfg.model)
    if todo and captioner is None:
        captioner = load_captioner(cfg, device, dtype)
    done_digests: dict[str, str] = {}
    with tqdm(total=len(todo), desc="captions", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = []
            for row, digest in todo[start:start + batch_size]:
                if digest in done_digests:  # same bytes earlier in this run
                    captions[row["id"]] = done_digests[digest]
                    continue
                try:
                    batch.append(((row, digest), _open_rgb(m.resolve(row["path"]))))
                except Exception as exc:
                    errors.append({"id": row["id"], "path": row["path"],
                                   "reason": f"undecodable image: {exc}"})
            results = _run_batch(captioner, batch) if batch else []
            for ((row, digest), _), text in zip(batch, results):
                if isinstance(text, Exception):
                    errors.append({"id": row["id"], "path": row["path"],
                                   "reason": f"captioning failed: {text}"})
                elif not text.strip():
                    errors.append({"id": row["id"], "path": row["path"],
                                   "reason": "the model returned an empty caption"})
                else:
                    cache.put(digest, text, row["id"])
                    captions[row["id"]] = done_digests[digest] = text
            bar.update(min(batch_size, len(todo) - start))
    rows = [{"id": f"caption/{r['id']}", "modality": "text", "label": r["label"],
             "group": r["group"], "split": r["split"], "path": "", "text": captions[r["id"]],
             "source_id": r["id"], "caption_model": cfg.model}
            for r in images.to_dict("records") if r["id"] in captions]
    if not rows:
        raise CaptionError(f"no image of {manifest} could be captioned: {errors[:3]}")
    path = write_manifest(pd.DataFrame(rows), out)
    for err in errors:
        log.warning("caption %s: %s", err["id"], err["reason"])
    return {"out": str(path), "items": len(rows), "computed": len(rows) - cached,
            "cached": cached, "model": cfg.model, "backend": cfg.backend, "prompt": cfg.prompt,
            "errors": errors}
