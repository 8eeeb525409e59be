"""``unibind bind``: runs with no training, from tiny random CLIP and CLAP of the real
architectures (loaded through ``from_pretrained(folder)``), and the text bridge's maths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.fixtures.media import make_media_folder
from unibind.binding.bind import BindError, bind
from unibind.binding.bridge import fit_bridge
from unibind.cli import app
from unibind.data.folder import build_folder_manifest
from unibind.encoders.tiny import tiny_model_dir
from unibind.features.extract import extract
from unibind.features.folder import load_features
from unibind.media.decode import load_audio
from unibind.run.folder import Run


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aligned")
    manifest = build_folder_manifest(make_media_folder(root / "data", per_label=6), labels="dirs")
    extract(manifest, root / "features", profile="tiny-aligned")
    return root


def _scores(run: Run, query: str, target: str) -> tuple[np.ndarray, list, list]:
    feats = run.load_features()
    q, t = feats.table(query), feats.table(target)
    a = run.project(query, feats.arrays[query][q["row"].to_numpy()])
    b = run.project(target, feats.arrays[target][t["row"].to_numpy()])
    return a @ b.T, q["text"].tolist(), t["path"].tolist()


def test_features_hold_text_in_two_views(aligned: Path):
    feats = load_features(aligned / "features")
    assert feats.views == {"text": ["clap", "clip"]}
    assert feats.arrays["text@clip"].shape[1] == 24 and feats.arrays["text@clap"].shape[1] == 20
    np.testing.assert_array_equal(feats.arrays["text"], feats.arrays["text@clap"])
    assert feats.meta["views"]["text@clip"]["spec"]["backend"] == "hf-clip-text"
    assert feats.with_views({"text": "clip"}).dims["text"] == 24


def test_bound_text_image_scores_equal_clip_cosine(aligned: Path):
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    summary = bind(aligned / "features", aligned / "run-clip", pivot="clip")
    assert summary["heads"]["image"].startswith("identity")
    ours, texts, paths = _scores(Run.load(aligned / "run-clip"), "text", "image")
    folder = tiny_model_dir("clip-aligned")
    model = CLIPModel.from_pretrained(folder).eval()
    tokens = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    images = [Image.open(aligned / "data" / p).convert("RGB") for p in paths]
    pixels = CLIPImageProcessorPil.from_pretrained(folder)(images=images,
                                                           return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(**tokens, pixel_values=pixels)
        reference = (out.logits_per_text / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_bound_text_audio_scores_equal_clap_cosine(aligned: Path):
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    summary = bind(aligned / "features", aligned / "run-clap")
    assert summary["pivot"] == "clap" and summary["heads"]["audio"].startswith("identity")
    assert "text bridge" in summary["heads"]["image"]
    ours, texts, paths = _scores(Run.load(aligned / "run-clap"), "text", "audio")
    folder = tiny_model_dir("clap-aligned")
    model = ClapModel.from_pretrained(folder).eval()
    extractor = ClapFeatureExtractor.from_pretrained(folder)
    waves = [load_audio(aligned / "data" / p, extractor.sampling_rate) for p in paths]
    inputs = extractor(waves, sampling_rate=extractor.sampling_rate, return_tensors="pt",
                       padding="repeatpad", truncation="rand_trunc")  # clips < window: no crop
    tokens = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                    input_features=inputs["input_features"])
    reference = (out.text_embeds @ out.audio_embeds.T).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_bound_run_is_a_run(aligned: Path):
    run = Run.load(aligned / "run-clap")
    assert run.info["made_by"] == "bind" and run.info["bound"]["scheme"] == "text-bridge"
    assert run.encoders["text"]["spec"]["backend"] == "hf-clap-text"
    clip_run = Run.load(aligned / "run-clip")
    assert clip_run.views == {"text": "clip"}
    assert clip_run.encoders["text"]["spec"]["backend"] == "hf-clip-text"
    from unibind.eval.evaluate import evaluate

    metrics = evaluate(aligned / "run-clap")
    assert metrics["made_by"] == "bind" and metrics["relevance"] == "label"
    assert set(metrics["n_items"]) == {"text", "image", "audio"}


def test_bridge_recovers_a_known_linear_map():
    rng = np.random.default_rng(0)
    a, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    x = rng.standard_normal((400, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x @ a.T
    for method in ("ridge", "procrustes", "auto"):
        bridge = fit_bridge(x, y + 1e-4 * rng.standard_normal(y.shape), method=method)
        np.testing.assert_allclose(bridge.weight, a, atol=0.02)
        assert np.abs(bridge.bias).max() < 0.02
    wide = rng.standard_normal((12, 16))  # any linear map: directions recovered on new points
    fresh = rng.standard_normal((50, 16))
    bridge = fit_bridge(x, x @ wide.T, method="ridge", lam=1e-6)
    got, want = bridge.apply(fresh), fresh @ wide.T
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.97


def test_bind_refuses_features_without_aligned_encoders(tmp_path: Path):
    from unibind.features.folder import features_from_arrays

    feats = features_from_arrays({"text": np.ones((2, 4)), "image": np.ones((2, 4))},
                                 {"text": ["a", "b"], "image": ["a", "b"]})
    with pytest.raises(BindError, match="--profile aligned"):
        bind(feats, tmp_path / "run")


def test_unlabelled_folder_walk_from_the_cli(tmp_path: Path):
    """data folder (no labels) -> extract -> bind -> index -> search; evaluate by groups;
    train says what it needs when there is nothing to tie items together."""
    src = make_media_folder(tmp_path / "photos")
    for label in ("dog", "rain", "bell"):  # a plain tree: move files out of label folders
        for f in (src / label).iterdir():
            f.rename(src / f"{label}-{f.name}")
        (src / label).rmdir()
    nested = src / "more" / "deeper"
    nested.mkdir(parents=True)
    (src / "dog-0.png").rename(nested / "dog-0.png")
    runner = CliRunner()

    def ok(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    made = ok("data", "folder", str(src))
    assert made["items"] == 18 and made["labels"] == 0
    ok("extract", str(src / "manifest.parquet"), "--out", str(tmp_path / "f"),
       "--profile", "tiny-aligned")
    bound = ok("bind", str(tmp_path / "f"), "--out", str(tmp_path / "run"))
    assert bound["scheme"] == "text-bridge"
    assert ok("index", str(tmp_path / "run"))["count"] == 18
    hits = ok("search", str(tmp_path / "run"), "--text", "a dog barking", "--k", "6",
              "--modality", "image,audio")["results"]
    assert len(hits) == 6 and {h["modality"] for h in hits} == {"image", "audio"}
    assert all(h["label"] == "" for h in hits)
    metrics = ok("evaluate", str(tmp_path / "run"), "--split", "all")
    assert metrics["relevance"] == "group" and "text->audio" in metrics["pairs"]
    assert metrics["not_measured"] and not metrics["zero_shot"]
    # no labels and no shared stems: nothing to train on, and train says so
    lone = tmp_path / "lone"
    for i, f in enumerate(sorted(src.glob("*.*"))[:6]):
        if f.suffix != ".parquet":
            lone.mkdir(exist_ok=True)
            f.rename(lone / f"{i}{f.suffix}")
    ok("data", "folder", str(lone))
    ok("extract", str(lone / "manifest.parquet"), "--out", str(tmp_path / "lf"),
       "--profile", "tiny-aligned")
    result = runner.invoke(app, ["train", str(tmp_path / "lf"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "neither labels nor groups" in result.output
    assert "unibind bind" in result.output


def test_data_folder_labels_only_when_asked(media_folder: Path):
    import pandas as pd

    plain = pd.read_parquet(build_folder_manifest(media_folder, labels="none"))
    assert set(plain["label"]) == {""} and plain["group"].str.startswith("dog/").sum() == 6
    dirs = pd.read_parquet(build_folder_manifest(media_folder, labels="dirs"))
    assert set(dirs["label"]) == {"dog", "rain", "bell"}


def test_train_init_never_below_bound(aligned: Path):
    from unibind.eval.evaluate import evaluate
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    cfg = override(preset("class"), epochs=4)  # candidates: the class preset's --init
    summary = train(aligned / "features", aligned / "init", preset_name="class", config=cfg,
                    init=aligned / "run-clap")
    table = summary["candidates"]
    assert summary["kept"] in table and table[summary["kept"]]["meets_floor"]
    assert "text=bound,image=bound,audio=bound" in table
    run = Run.load(aligned / "init")
    assert run.info["made_by"] == "train --init" and run.views == {"text": "clap"}
    metrics = evaluate(aligned / "init")
    names = [r["name"] for r in metrics["versus"]["runs"]]
    assert names == ["trained (--init), class (this run)", "bound"]
    assert all(r["same_split"] for r in metrics["versus"]["runs"])


def test_default_starts_from_the_bound_run(aligned: Path):
    """The default preset binds the features itself, trains residual heads on the bound map
    (every bound field honoured) and stores the bound run inside for evaluate's comparison."""
    import dataclasses

    from unibind.eval.evaluate import evaluate
    from unibind.training.config import override, preset
    from unibind.training.trainer import train

    cfg = override(preset("default"), epochs=2, mix_shares=(0.5, 1.0), soup=2)
    summary = train(aligned / "features", aligned / "auto", config=cfg)
    run = Run.load(aligned / "auto")
    init = run.info["init"]
    assert run.info["made_by"] == "train" and init["run"] == "bound" and init["soup"] == 2
    assert set(init["validation"]) == {"0", "0.5", "1"} and summary["share"] in (0.0, 0.5, 1.0)
    assert Run.load(aligned / "auto" / "bound").info["made_by"] == "bind"
    kinds = {m: k["kind"] for m, k in run.heads.cfg.kinds.items()}
    assert kinds == {m: "residual" for m in run.modalities}  # aligned: every modality bound
    metrics = evaluate(aligned / "auto")
    assert [r["name"] for r in metrics["versus"]["runs"]] == ["trained (this run)", "bound"]
    plain = train(aligned / "features", aligned / "plain",
                  config=dataclasses.replace(cfg, bound_start=False))
    assert "share" not in plain and "init" not in Run.load(aligned / "plain").info
    none = train(aligned / "features", aligned / "none", config=cfg, init="none")
    assert "share" not in none


def test_index_add_and_search_on_a_clip_pivot_run(aligned: Path, tmp_path: Path):
    """A run reading the text@clip view: new items are embedded with CLIP-text, as indexed."""
    import pandas as pd

    from unibind.search.index import add_items, build_index, load_index
    from unibind.search.space import Space

    run_path = aligned / "run-clip"
    bind(aligned / "features", run_path, pivot="clip")
    build_index(run_path)
    data = aligned / "data"
    new = pd.DataFrame([{"id": "new-text", "modality": "text", "label": "dog", "group": "",
                         "split": "", "path": "", "text": "a brand new caption"}])
    new.to_parquet(data / "new.parquet", index=False)
    summary = add_items(run_path, data / "new.parquet")
    assert summary["added"] == 1
    index = load_index(run_path / "index")
    space = Space.load(run_path)
    q = space.embed("text", ["a brand new caption"])
    scores, rows, _ = space.search_vectors(q, k=1, modality="text", balance="none")
    assert index.items.iloc[int(rows[0][0])]["id"] == "new-text"
    assert scores[0][0] == pytest.approx(1.0, abs=1e-5)


def test_choose_keeps_the_best_candidate_at_or_above_the_floor():
    from unibind.training.warm_start import choose

    def pairs(ti: float, it: float, ta: float) -> dict:
        return {"text->image": {"mAP@10": ti}, "image->text": {"mAP@10": it},
                "text->audio": {"mAP@10": ta}, "text->text": {"mAP@10": 1.0}}

    floor = {"text->image": 0.5, "image->text": 0.4}
    cands = {"tuned": (None, pairs(0.45, 0.9, 0.9)),      # best mean, but below the floor
             "bound": (None, pairs(0.5, 0.4, 0.2)),
             "scratch": (None, pairs(0.6, 0.5, 0.3))}
    best, table = choose(cands, floor)
    assert best == "scratch" and not table["tuned"]["meets_floor"]
    assert table["bound"]["meets_floor"]


def test_unlabelled_grouped_data_trains_with_instance_positives():
    from unibind.features.folder import features_from_arrays
    from unibind.training.config import preset
    from unibind.training.warm_start import check_trainable

    feats = features_from_arrays({"text": np.ones((3, 4)), "image": np.ones((3, 4))},
                                 {"text": [""] * 3, "image": [""] * 3},
                                 groups={"text": ["a", "b", "c"], "image": ["a", "b", "c"]})
    assert check_trainable(feats, preset("default")).positives == "instance"


def test_run_encode_equals_space_embed(aligned: Path, tmp_path: Path):
    """Run.encode needs no index and gives Space.embed's vectors (centred or not)."""
    import unibind
    from unibind.search.index import build_index
    from unibind.search.space import Space

    bind(aligned / "features", tmp_path / "run")
    run = Run.load(tmp_path / "run")
    assert run.reach == {m: ["text", "image", "audio"] for m in ("text", "image", "audio")}
    texts = ["a dog barking", "rain falling on a roof", "a church bell ringing"]
    images = sorted((aligned / "data").rglob("*.png"))[:3]
    sounds = sorted((aligned / "data").rglob("*.wav"))[:2]
    encoded = {"text": run.encode(texts, modality="text", batch_size=2),
               "image": unibind.encode(tmp_path / "run", images, modality="image"),
               "audio": run.encode(sounds, modality="audio", progress=True)}
    assert not (tmp_path / "run" / "index").exists()
    for center in (False, True):
        build_index(tmp_path / "run", center=center)
        space = Space.load(tmp_path / "run")
        assert space.index.meta["reach"] == run.reach
        for m, items in (("text", texts), ("image", images), ("audio", sounds)):
            want = space.embed(m, items)
            got = run.encode(items, modality=m, center=center)
            np.testing.assert_allclose(got, want, atol=1e-5)
            if center == run.search_center:
                np.testing.assert_allclose(encoded[m], want, atol=1e-5)
    with pytest.raises(unibind.UnibindError, match="list"):
        run.encode("a dog", modality="text")
