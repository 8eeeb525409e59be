"""Tiny randomly initialised models of the seed architectures (BERT, CLIP, CLAP).

Built deterministically from the configs below on first use, saved with ``save_pretrained`` to
the user cache, then loaded like any model folder through ``from_pretrained``. They exercise the
real code paths in tests; their embeddings carry no meaning (no substitute for real weights).
"""

from __future__ import annotations

import hashlib
import json
import logging
import string
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPTokenizer,
    RobertaTokenizer,
)

from unibind.errors import unknown
from unibind.util.atomic import atomic_folder
from unibind.util.runtime import cache_root

log = logging.getLogger(__name__)

_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 64}
TINY_CONFIGS = {
    "bert": {**_SMALL, "max_position_embeddings": 128, "type_vocab_size": 2},
    "clip": {"projection_dim": 24,
             "text_config": {**_SMALL, "vocab_size": 99, "max_position_embeddings": 32,
                             "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1},
             "vision_config": {**_SMALL, "image_size": 32, "patch_size": 8}},
    "clap": {"projection_dim": 20,
             "text_config": {**_SMALL, "vocab_size": 99, "max_position_embeddings": 40},
             "audio_config": {"spec_size": 64, "num_mel_bins": 16, "patch_stride": 4,
                              "patch_size": 4, "window_size": 4, "patch_embeds_hidden_size": 16,
                              "depths": [1, 1], "num_attention_heads": [2, 2],
                              "hidden_size": 32, "enable_fusion": False,
                              "projection_hidden_size": 32}},
    # text towers usable through a byte-level tokenizer (the tiny-aligned profile)
    "clip_text_config": {**_SMALL, "vocab_size": 514, "max_position_embeddings": 32,
                         "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513},
    "clap_text_config": {**_SMALL, "vocab_size": 260, "max_position_embeddings": 40,
                         "pad_token_id": 1},
    "clap_extractor": {"feature_size": 16, "sampling_rate": 48000, "hop_length": 480,
                       "max_length_s": 2, "fft_window_size": 1024},
}


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = ["a", "the", "dog", "cat", "bird", "rain", "car", "bark", "barking", "sound",
             "photo", "of", "is", "and", "water", "bell", "engine", "music", "wind", "fire"]
    return specials + words + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits]


def _build_bert(folder: Path) -> None:
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    model = BertModel(BertConfig(vocab_size=len(_vocab()), **TINY_CONFIGS["bert"]))
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)


def _byte_chars() -> list[str]:
    """The 256 byte-level BPE symbols (GPT-2 / CLIP / RoBERTa byte-to-unicode map)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def _build_clip(folder: Path) -> None:
    model = CLIPModel(CLIPConfig(**TINY_CONFIGS["clip"]))
    model.save_pretrained(folder)
    size = TINY_CONFIGS["clip"]["vision_config"]["image_size"]
    CLIPImageProcessorPil(size={"shortest_edge": size},
                          crop_size={"height": size, "width": size}).save_pretrained(folder)


def _build_clap(folder: Path) -> None:
    model = ClapModel(ClapConfig(**TINY_CONFIGS["clap"]))
    model.save_pretrained(folder)
    ClapFeatureExtractor(**TINY_CONFIGS["clap_extractor"]).save_pretrained(folder)


def _build_clip_aligned(folder: Path) -> None:
    """CLIP whose text tower is usable: a character-level CLIP tokenizer (no merges)."""
    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": 256 + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32).save_pretrained(folder)
    config = {**TINY_CONFIGS["clip"], "text_config": TINY_CONFIGS["clip_text_config"]}
    CLIPModel(CLIPConfig(**config)).save_pretrained(folder)
    size = TINY_CONFIGS["clip"]["vision_config"]["image_size"]
    CLIPImageProcessorPil(size={"shortest_edge": size},
                          crop_size={"height": size, "width": size}).save_pretrained(folder)


def _build_clap_aligned(folder: Path) -> None:
    """CLAP whose text tower is usable: a byte-level RoBERTa tokenizer without merges."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3} | {c: 4 + i for i, c in
                                                              enumerate(_byte_chars())}
    RobertaTokenizer(vocab=vocab, merges=[], mask_token="<unk>",
                     model_max_length=38).save_pretrained(folder)
    config = {**TINY_CONFIGS["clap"], "text_config": TINY_CONFIGS["clap_text_config"]}
    ClapModel(ClapConfig(**config)).save_pretrained(folder)
    ClapFeatureExtractor(**TINY_CONFIGS["clap_extractor"]).save_pretrained(folder)


BUILDERS = {"bert": _build_bert, "clip": _build_clip, "clap": _build_clap,
            "clip-aligned": _build_clip_aligned, "clap-aligned": _build_clap_aligned}


def tiny_model_dir(arch: str, root: Path | None = None) -> Path:
    """Folder of the tiny ``arch`` model ("bert", "clip", "clap", and "clip-aligned" /
    "clap-aligned" whose text towers have tokenizers), built on first use."""
    if arch not in BUILDERS:
        raise unknown("tiny model", arch, sorted(BUILDERS))
    recipe = json.dumps({"arch": arch, "configs": TINY_CONFIGS}, sort_keys=True).encode()
    tag = hashlib.sha256(recipe).hexdigest()[:12]
    folder = (root or cache_root() / "models") / f"tiny-{arch}-{tag}"
    if not (folder / "config.json").is_file():
        log.info("building tiny random %s model in %s", arch, folder)
        with atomic_folder(folder) as tmp:
            state = torch.random.get_rng_state()
            torch.manual_seed(0)
            try:
                BUILDERS[arch](tmp)
            finally:
                torch.random.set_rng_state(state)
    return folder
