from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fixtures.media import write_image, write_tone
from unibind.encoders import EncoderSpec, ItemError, fingerprint, load_encoder, resolve_profile
from unibind.encoders.hf_clap import log_mel, repeat_pad, window_starts
from unibind.media.decode import load_audio


@pytest.fixture(scope="module")
def tiny() -> dict:
    specs = resolve_profile("tiny")
    return {m: load_encoder(s) for m, s in specs.items()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    root = tmp_path_factory.mktemp("media")
    images = [write_image(root / f"{i}.png", (40 * i, 100, 200 - 30 * i), seed=i,
                          size=(30 + 7 * i, 40)) for i in range(5)]
    # lengths span one window (2 s for the tiny CLAP) and several windows
    audio = [write_tone(root / f"{i}.wav", 300.0 * (i + 1), s, seed=i)
             for i, s in enumerate([0.4, 1.0, 2.0, 3.1, 5.5])]
    texts = ["a dog", "rain falling on a tin roof at night", "bell", "a cat and a dog", "x" * 300]
    return {"text": texts, "image": images, "audio": audio}


def test_dims_match_model_configs(tiny: dict) -> None:
    assert tiny["text"].dim == tiny["text"].model.config.hidden_size == 32
    assert tiny["image"].dim == 24 and tiny["audio"].dim == 20


@pytest.mark.parametrize("modality", ["text", "image", "audio"])
def test_deterministic_and_batch_size_invariant(tiny: dict, inputs: dict, modality: str) -> None:
    enc = tiny[modality]
    batched = enc.encode(inputs[modality], batch_size=8)
    assert batched.shape == (5, enc.dim) and batched.dtype == np.float32
    one_by_one = np.concatenate([enc.encode([x], batch_size=1) for x in inputs[modality]])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(enc.encode(inputs[modality], batch_size=8), batched)
    assert np.linalg.matrix_rank(batched) > 1  # distinct inputs, distinct vectors


def test_text_poolings_differ_and_are_valid(tiny: dict) -> None:
    src = tiny["text"].spec.source
    out = {}
    for pooling in ("pooler", "cls", "mean"):
        enc = load_encoder(EncoderSpec("text", "hf-text", src, options={"pooling": pooling}))
        out[pooling] = enc.encode(["a dog barking", "rain"])
    assert not np.allclose(out["cls"], out["mean"])
    assert np.abs(out["pooler"]).max() <= 1.0  # BERT pooler ends in tanh


def test_text_max_length_truncates(tiny: dict) -> None:
    src = tiny["text"].spec.source
    enc = load_encoder(EncoderSpec("text", "hf-text", src, options={"max_length": 8}))
    long_a, long_b = "a dog " * 3 + "rain " * 50, "a dog " * 3 + "bell " * 50
    a, b = enc.encode([long_a, long_b])
    np.testing.assert_allclose(a, b, atol=1e-6)  # differ only after the cut


def test_audio_windows_cover_clip_deterministically() -> None:
    assert window_starts(100, 200) == [0]
    assert window_starts(200, 200) == [0]
    starts = window_starts(450, 200)
    assert starts == [0, 125, 250]
    assert starts[-1] + 200 == 450
    covered = np.zeros(450, bool)
    for s in starts:
        covered[s:s + 200] = True
    assert covered.all()


@pytest.mark.parametrize("fusion", [False, True])
@pytest.mark.parametrize("seconds", [0.3, 2.0])
def test_log_mel_matches_clap_feature_extractor(fusion: bool, seconds: float) -> None:
    from transformers import ClapFeatureExtractor

    extractor = ClapFeatureExtractor(feature_size=64, max_length_s=2)
    wave = 0.1 * np.random.default_rng(1).standard_normal(int(seconds * 48000)).astype(np.float32)
    ref = extractor([wave], sampling_rate=48000, return_tensors="np", padding="repeatpad",
                    truncation="fusion" if fusion else "rand_trunc")["input_features"]
    ours = log_mel(repeat_pad(wave, extractor.nb_max_samples)[None], extractor, fusion).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3)  # dB values spanning ~100 dB


def test_long_audio_is_mean_of_its_windows(tiny: dict, inputs: dict) -> None:
    enc = tiny["audio"]
    wave = load_audio(inputs["audio"][4], enc.sample_rate)  # 5.5 s -> 3 windows of 2 s
    starts = window_starts(len(wave), enc.window)
    assert len(starts) == 3
    windows = enc.encode([wave[s:s + enc.window] for s in starts])
    np.testing.assert_allclose(enc.encode([wave])[0], windows.mean(0), atol=1e-6)


def test_bad_items_raise_item_error_naming_them(tiny: dict, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ItemError, match="corrupt.png"):
        tiny["image"].encode([corrupt])
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(ItemError, match="zero-length audio"):
        tiny["audio"].encode([empty])
    with pytest.raises(ItemError, match="empty text"):
        tiny["text"].encode(["ok", "  "])


def test_every_backend_of_a_modality_checks_raw_inputs_alike(tiny: dict) -> None:
    """Waveforms and pixel arrays go through ``encoders.inputs`` in every backend."""
    with pytest.raises(ItemError, match="NaN or infinite"):
        tiny["audio"].encode([np.array([0.1, np.nan, 0.2], np.float32)])
    pixels = np.full((20, 24, 3), 120, np.uint8)
    from PIL import Image

    np.testing.assert_allclose(tiny["image"].encode([pixels]),
                               tiny["image"].encode([Image.fromarray(pixels)]), atol=1e-6)
    with pytest.raises(ItemError, match="HxWx3"):
        tiny["image"].encode([np.zeros((4, 4), np.uint8)])


def test_fingerprint_tracks_options_and_content_not_path(tiny: dict, tmp_path: Path) -> None:
    import shutil

    spec = tiny["text"].spec
    moved = tmp_path / "copy"
    shutil.copytree(spec.source, moved)
    same = EncoderSpec("text", "hf-text", str(moved), options=spec.options)
    assert fingerprint(same) == fingerprint(spec)
    other = EncoderSpec("text", "hf-text", str(moved), options={**spec.options, "pooling": "cls"})
    assert fingerprint(other) != fingerprint(spec)
    (moved / "config.json").write_text((moved / "config.json").read_text().replace("32", "33", 1))
    assert fingerprint(same) != fingerprint(spec)


def test_profile_overrides() -> None:
    specs = resolve_profile("seed", {"text": "/models/my-bert", "audio": None})
    assert specs["text"].source == "/models/my-bert" and specs["text"].backend == "hf-text"
    assert specs["text"].options["pooling"] == "pooler"
    assert specs["audio"].source == "laion/larger_clap_general"
    with pytest.raises(KeyError, match="unknown profile"):
        resolve_profile("nope")


def test_seed_profile_uses_from_pretrained_on_hub_ids() -> None:
    """The real path stays the default: offline, a hub id fails loudly (no silent fallback)."""
    spec = resolve_profile("seed")["text"]
    assert spec.source == "bert-base-uncased"
    with pytest.raises(OSError):
        load_encoder(spec)
