"""Search: Space API and CLI on a tiny-profile run (ranking vs brute force, compositional
queries, modality filter, balance modes, encoder mismatch refusal)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from unibind.cli import app
from unibind.search.index import IndexMismatch
from unibind.search.space import Space


def all_vectors(space: Space) -> np.ndarray:
    """Every indexed item's vector in global row order (exact parts keep their floats)."""
    out = np.zeros((len(space.index), space.run.embed_dim), np.float32)
    for part in space.index.parts.values():
        out[part.rows] = part.exact.x
    return out


def brute(space: Space, q: np.ndarray, k: int, mods: list[str]) -> list[str]:
    scores = all_vectors(space) @ q
    allowed = space.index.items["modality"].isin(mods).to_numpy()
    order = np.lexsort((np.arange(len(scores)), -np.where(allowed, scores, -np.inf)))[:k]
    return space.index.items.iloc[order]["id"].tolist()


def test_text_query_ranks_like_brute_force(space: Space):
    result = space.search(text="a dog barking", k=5, modality="audio,image", balance="none")
    q, _ = space.query_vector(text="a dog barking")
    assert [r["id"] for r in result["results"]] == brute(space, q, 5, ["audio", "image"])
    assert {r["modality"] for r in result["results"]} <= {"audio", "image"}
    first = result["results"][0]
    assert set(first) >= {"rank", "score", "id", "modality", "label", "path"}
    scores = [r["score"] for r in result["results"]]
    assert scores == sorted(scores, reverse=True)


def test_compositional_query_is_normalised_sum(space: Space, run_path: Path):
    audio = run_path.parent / "data" / "rain" / "1.wav"
    qt = space.embed("text", ["a dog barking"])[0]
    qa = space.embed("audio", [audio])[0]
    q, mods = space.query_vector(text="a dog barking", audio=audio)
    want = (qt + qa) / np.linalg.norm(qt + qa)
    np.testing.assert_allclose(q, want, atol=1e-6)
    assert mods == ["text", "audio"]
    result = space.search(text="a dog barking", audio=str(audio), k=4, modality="image",
                          balance="none")
    assert [r["id"] for r in result["results"]] == brute(space, q, 4, ["image"])
    assert result["query"] == {"text": ["a dog barking"], "audio": [str(audio)]}


def test_balanced_mode_mixes_modalities(space: Space):
    result = space.search(text="rain", k=9, balance="balanced")
    counts = {m: sum(r["modality"] == m for r in result["results"]) for m in space.index.parts}
    assert counts == {"text": 3, "image": 3, "audio": 3}  # equal pools: equal shares
    with pytest.raises(ValueError, match="unknown balance mode"):
        space.search(text="rain", balance="loud")


def test_changed_query_encoder_is_refused(run_path: Path):
    space = Space.load(run_path)
    space.index.meta["provenance"]["encoders"]["text"]["fingerprint"] = "another-model"
    with pytest.raises(IndexMismatch, match="fingerprint"):
        space.search(text="rain")


def test_cli_json(run_path: Path):
    image = run_path.parent / "data" / "bell" / "0.png"
    res = CliRunner().invoke(app, ["search", str(run_path), "--text", "a church bell",
                                   "--image", str(image), "--k", "3", "--modality", "audio",
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["query"] == {"text": ["a church bell"], "image": [str(image)]}
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    assert all(r["modality"] == "audio" and "path" in r for r in out["results"])


def test_cli_errors_are_clear(run_path: Path, tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(app, ["search", str(run_path), "--audio", str(tmp_path / "nope.wav")])
    assert res.exit_code == 2 and "nope.wav" in res.output
    res = runner.invoke(app, ["search", str(run_path)])
    assert res.exit_code == 2 and "--text" in res.output
    res = runner.invoke(app, ["search", str(run_path), "--text", "x", "--modality", "smell"])
    assert res.exit_code == 2 and "smell" in res.output


def test_targets_at_the_noise_floor_or_out_of_reach_get_no_slots(run_path: Path):
    space = Space.load(run_path)
    xs = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0]
    high, low = [[xs, [2.0] * 6], [xs, [-2.0] * 6]]  # scores no item reaches / every item does
    space.run.info["noise_pairs"] = {"text": {"text": low, "image": low, "audio": high}}
    result = space.search(text="rain", k=9, balance="balanced")
    assert {r["modality"] for r in result["results"]} == {"text", "image"}
    assert "noise floor" in result["withheld"]["audio"]
    assert set(result["noise_floor"]) == {"text", "image", "audio"}
    kept = space.search(text="rain", k=9, balance="balanced", floor=False)
    assert "withheld" not in kept and "audio" in {r["modality"] for r in kept["results"]}
    space.run.info.pop("noise_pairs")
    space.run.info["reach"] = {"text": ["text", "image"]}
    result = space.search(text="rain", k=9, balance="balanced")
    assert "audio" not in {r["modality"] for r in result["results"]}
    assert "audio" in result["note"] and "withheld" not in result  # reach: not searched


def test_balanced_results_are_ranked_by_calibrated_score(space: Space):
    result = space.search(text="rain", k=9, balance="balanced")
    cal = space.run.info["calibration_pairs"]["text"]
    z = [(r["score"] - cal[r["modality"]][0]) / cal[r["modality"]][1] for r in result["results"]]
    assert all(b - a <= 1e-4 for a, b in zip(z, z[1:]))  # (scores are rounded to 6 places)
