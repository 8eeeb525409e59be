"""Audio backend over aiSFX (ISMIR 2022 sound-effects embeddings; ``aisfx`` package, CC BY 4.0).

``source`` is a folder holding aisfx's ``checkpoint.pth`` (the package's ``models`` folder). Only
the embedding CNN (``EmbeddingNet``, 4.7 M parameters) is used; its classifier heads are dropped.

Checkpoint safety: the file is a pickle of ``(state_dict, {dataset: (np.int64, int)})`` that
``torch.load(weights_only=True)`` refuses because of the numpy scalars. It is NOT loaded with
``weights_only=False``: its sha256 must match ``CHECKPOINT_SHA256`` (pinned for aisfx 0.1.2), then
it is loaded with ``weights_only=True`` and an explicit allow-list of exactly those numpy globals.

Deterministic windowing (per item, so results do not depend on the batch):
1. decode with soundfile, mix to mono, resample to 44.1 kHz (soxr), peak-normalise (as aisfx's
   librosa path does);
2. log-mel spectrogram as aisfx's librosa path: 2048-sample Hann frames, hop 1024, 96 HTK mel
   bands (unit-sum filters, 0-22.05 kHz), power, ``log10(1e4 * S + 1)``, divided by the paper's
   global maximum (min-max "original" normalisation), laid out ``[frames, 96]``;
3. blocks of 100 frames (~2.3 s) starting every ``block_hop`` frames from 0, plus one block
   ending at the last frame when the hop does not land there (so every frame is covered); a clip
   shorter than one block is zero-padded (silence) to one block, as aisfx's ``blocking`` pads;
4. the embedding is the mean of the 512-d block embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unibind.encoders.base import Encoder
from unibind.encoders.inputs import audio_wave
from unibind.encoders.spec import EncoderLoadError, EncoderSpec, ModelFileError
from unibind.util.digests import sha256_file

CHECKPOINT = "checkpoint.pth"
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
# EmbeddingNet('max', 3, 1, 64): the "X-Sequential-CE" model of the paper
ARCH = {"pool_type": "max", "ks": 3, "strd": 1, "hl1": 64}
DEFAULTS: dict[str, Any] = {"sample_rate": 44100, "n_fft": 2048, "hop_length": 1024,
                            "n_mels": 96, "block": 100, "block_hop": 50,
                            "spec_max": 9.457798957824707}


def block_starts(n_frames: int, block: int, hop: int) -> list[int]:
    """Start frames of the blocks covering ``n_frames`` (one block when the clip is shorter)."""
    if n_frames <= block:
        return [0]
    starts = list(range(0, n_frames - block + 1, hop))
    if starts[-1] != n_frames - block:
        starts.append(n_frames - block)
    return starts


def _numpy_allow_list() -> list[Any]:
    """Exactly the globals the checkpoint's ``{dataset: (np.int64, int)}`` dict needs."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    pickled_name = "numpy.core.multiarray.scalar"  # as written by numpy 1.x
    own_name = f"{scalar.__module__}.{scalar.__qualname__}"
    entry = scalar if own_name == pickled_name else (scalar, pickled_name)
    return [entry, np.dtype, type(np.dtype(np.int64))]


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The EmbeddingNet state dict from aisfx's checkpoint: sha256-pinned, allow-listed unpickle."""
    path = Path(path)
    digest = sha256_file(path)
    if digest != CHECKPOINT_SHA256:
        raise ModelFileError(f"{path}: sha256 {digest} is not the pinned aisfx 0.1.2 checkpoint "
                         f"({CHECKPOINT_SHA256}); refusing to unpickle it")
    if not hasattr(torch.serialization, "safe_globals"):
        raise EncoderLoadError("loading the aisfx checkpoint safely needs torch>=2.6 "
                           "(torch.serialization.safe_globals)")
    with torch.serialization.safe_globals(_numpy_allow_list()):
        state, _datasets = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def build_arch() -> torch.nn.Module:
    """The aisfx embedding CNN, untrained (weights are loaded separately)."""
    from aisfx.models.cnn2d import EmbeddingNet

    return EmbeddingNet(ARCH["pool_type"], ARCH["ks"], ARCH["strd"], ARCH["hl1"])


class AisfxAudioEncoder(Encoder):
    """Sound effects -> 512-d aisfx embeddings (mean over log-mel blocks); the offline audio
    encoder."""
    modality = "audio"

    def _load_model(self) -> torch.nn.Module:
        self.options = {**DEFAULTS, **self.spec.options}
        self.sample_rate = int(self.options["sample_rate"])
        model = build_arch()
        model.load_state_dict(load_checkpoint(Path(self.spec.source).expanduser() / CHECKPOINT))
        import librosa

        o = self.options
        self.mel_basis = librosa.filters.mel(sr=self.sample_rate, n_fft=int(o["n_fft"]),
                                             n_mels=int(o["n_mels"]), fmin=0.0,
                                             fmax=self.sample_rate / 2, htk=True, norm=1.0
                                             ).astype(np.float32)
        return model

    @property
    def dim(self) -> int:
        return int(self.model.conv_block4.conv2.out_channels)

    @classmethod
    def config_dim(cls, spec: EncoderSpec) -> int | None:
        try:
            return int(build_arch().conv_block4.conv2.out_channels)
        except ImportError:
            return None

    def spectrogram(self, wave: np.ndarray) -> np.ndarray:
        """Peak-normalised waveform -> normalised log-mel ``[frames, n_mels]`` float32."""
        import librosa

        o = self.options
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        y = wave / peak if peak > 0 else wave
        if y.size < int(o["n_fft"]):  # trailing zeros == the block's zero padding; no warning
            y = np.pad(y, (0, int(o["n_fft"]) - y.size))
        stft = librosa.stft(y.astype(np.float32), n_fft=int(o["n_fft"]),
                            hop_length=int(o["hop_length"]), win_length=int(o["n_fft"]),
                            window="hann", center=True, pad_mode="constant")
        mel = self.mel_basis @ (np.abs(stft) ** 2)
        logmel = np.log10(mel * 10000.0 + 1.0) / float(o["spec_max"])
        return np.ascontiguousarray(logmel.T, dtype=np.float32)

    def blocks(self, spec: np.ndarray) -> np.ndarray:
        """``[frames, bands]`` -> ``[k, block, bands]`` (zero-padded to one block if short)."""
        block, hop = int(self.options["block"]), int(self.options["block_hop"])
        if spec.shape[0] < block:
            spec = np.vstack([spec, np.zeros((block - spec.shape[0], spec.shape[1]), spec.dtype)])
        return np.stack([spec[s:s + block] for s in block_starts(spec.shape[0], block, hop)])

    def load(self, item: Any) -> np.ndarray:
        """A path, or a mono waveform at the model rate -> the item's mel blocks."""
        return self.blocks(self.spectrogram(audio_wave(item, self.sample_rate, self.limits)))

    def sort_key(self, decoded: np.ndarray) -> int:
        return -len(decoded)

    def collate(self, decoded: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
        return torch.from_numpy(np.concatenate(list(decoded))), [len(d) for d in decoded]

    def forward_batch(self, batch: tuple[torch.Tensor, list[int]]) -> torch.Tensor:
        x, counts = batch
        emb = self.model(x.to(self.device, self.dtype, non_blocking=True))
        owner = torch.repeat_interleave(torch.arange(len(counts), device=emb.device),
                                        torch.tensor(counts, device=emb.device))
        summed = torch.zeros((len(counts), emb.shape[1]), dtype=emb.dtype, device=emb.device)
        summed.index_add_(0, owner, emb)
        return summed / torch.tensor(counts, dtype=emb.dtype, device=emb.device).unsqueeze(1)
