"""Pair expansion (unibind.search.pair_expansion) vs a brute-force reading of its rule; Space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unibind.search.pair_expansion import expand_via_pairs, group_members


class ArrayIndex:
    """Exact search over a matrix, per modality, with global rows (the SpaceIndex contract)."""

    def __init__(self, items: pd.DataFrame, vectors: np.ndarray):
        self.items, self.vectors = items, vectors

    def search(self, q, k, modalities=None):
        out = {}
        for m in modalities:
            rows = np.flatnonzero(self.items["modality"].to_numpy() == m)
            s = q @ self.vectors[rows].T
            order = np.argsort(-s, axis=1, kind="stable")[:, :k]
            top_s = np.take_along_axis(s, order, axis=1)
            pad = k - top_s.shape[1]
            out[m] = (np.pad(top_s, ((0, 0), (0, pad)), constant_values=-np.inf),
                      np.pad(rows[order], ((0, 0), (0, pad)), constant_values=-1))
        return out


def _toy(seed: int = 0) -> tuple[ArrayIndex, dict]:
    rng = np.random.default_rng(seed)
    mods = ["text"] * 6 + ["image"] * 6 + ["audio"] * 4
    groups = [f"g{i}" for i in range(6)] * 2 + ["g0", "g1", "g2", ""]
    items = pd.DataFrame({"modality": mods, "group": groups})
    vectors = rng.standard_normal((len(mods), 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    calibration = {"text": (0.1, 0.3), "image": (0.05, 0.2), "audio": (0.0, 0.25)}
    return ArrayIndex(items, vectors), calibration


def _reference(index: ArrayIndex, q: np.ndarray, qm: str, t: str, k: int, anchors: int,
               cal: dict) -> list[tuple[int, float]]:
    """The rule, spelled out: direct top-k and members of the anchors' groups, best z wins."""
    items, vec = index.items, index.vectors
    best: dict[int, float] = {}
    t_rows = np.flatnonzero(items["modality"] == t)
    direct = sorted(t_rows, key=lambda r: -(vec[r] @ q))[:k]
    for r in direct:
        best[r] = max(best.get(r, -np.inf), (vec[r] @ q - cal[t][0]) / cal[t][1])
    if t != qm:
        q_rows = np.flatnonzero(items["modality"] == qm)
        for a in sorted(q_rows, key=lambda r: -(vec[r] @ q))[:anchors]:
            z = (vec[a] @ q - cal[qm][0]) / cal[qm][1]
            for r in t_rows:
                if items.group[r] and items.group[r] == items.group[a]:
                    best[r] = max(best.get(r, -np.inf), z)
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


@pytest.mark.parametrize("anchors", [1, 3, 6])
def test_expansion_matches_reference(anchors: int) -> None:
    index, cal = _toy()
    rng = np.random.default_rng(1)
    q = rng.standard_normal((4, 8)).astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = expand_via_pairs(index, q, "text", ["text", "image", "audio"], 3, anchors, cal,
                           group_members(index.items))
    for t in ("text", "image", "audio"):
        scores, rows = out[t]
        for i in range(len(q)):
            ref = _reference(index, q[i], "text", t, 3, anchors, cal)
            got = [(int(r), float(s)) for r, s in zip(rows[i], scores[i]) if r >= 0]
            assert [r for r, _ in got] == [r for r, _ in ref]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in ref], rtol=1e-9)


def test_item_reached_only_through_its_pair() -> None:
    index, cal = _toy()
    caption = index.vectors[0]  # text item of group g0; query = that caption exactly
    paired_image = 6            # image of group g0
    direct = index.search(caption[None], 2, ["image"])["image"][1][0]
    assert paired_image not in direct  # not reachable directly at this depth...
    out = expand_via_pairs(index, caption[None], "text", ["image"], 2, 1, cal,
                           group_members(index.items))
    rows = out["image"][1][0]
    assert rows[0] == paired_image  # ...but first through its caption (z of cos = 1)
    assert out["image"][0][0, 0] == pytest.approx((1.0 - 0.1) / 0.3)


def test_missing_calibration_is_an_error() -> None:
    index, cal = _toy()
    with pytest.raises(ValueError, match="calibration"):
        expand_via_pairs(index, index.vectors[:1], "text", ["image"], 2, 1,
                         {"image": cal["image"]}, group_members(index.items))


def test_space_search_via_pairs_uses_the_runs_calibration(space, run_path: Path):  # noqa: F811
    from unibind.search.merge import merge_topk

    query = "a church bell ringing, take 1"
    q, _ = space.query_vector(text=query)
    cal = space._calibration(["text"])
    per = expand_via_pairs(space.index, q[None], "text", ["image", "audio"], 4, 2, cal,
                           group_members(space.index.items))
    _, _, rows = merge_topk(per, 4, "balanced", pool_sizes=space.index.pool_sizes())
    result = space.search(text=query, k=4, modality="image,audio", via_pairs=2,
                          balance="balanced")
    assert result["mode"] == "balanced+pairs"
    assert [r["id"] for r in result["results"]] == space.index.items.iloc[rows[0]]["id"].tolist()
    # every member of the nearest caption's group is a candidate with at least its anchor's z
    anchor_s, anchor_r = space.index.search(q[None], 1, ["text"])["text"]
    z = (anchor_s[0, 0] - cal["text"][0]) / cal["text"][1]
    group = space.index.items.iloc[anchor_r[0, 0]]["group"]
    for m in ("image", "audio"):
        scores, cand = expand_via_pairs(space.index, q[None], "text", [m], 9, 1, cal,
                                        group_members(space.index.items))[m]
        items = space.index.items
        member = items.index[(items["group"] == group) & (items["modality"] == m)][0]
        assert member in cand[0] and scores[0][list(cand[0]).index(member)] >= z - 1e-9
    with pytest.raises(ValueError, match="exactly one modality"):
        space.search(text="x", audio=str(Path(run_path).parent / "data" / "dog" / "0.wav"),
                     via_pairs=2)
