"""merge_topk modes against brute-force merges."""

from __future__ import annotations

import numpy as np
import pytest

from unibind.search.merge import MODES, apply_floor, merge_topk, noise_floors


def _lists(rng, n_q=6, sizes=None):
    sizes = sizes or {"text": 8, "image": 5, "audio": 7}
    per = {}
    for i, (m, k) in enumerate(sizes.items()):
        s = -np.sort(-(rng.random((n_q, k)) + 0.3 * i), axis=1)
        r = np.stack([rng.permutation(50)[:k] for _ in range(n_q)])
        per[m] = (s, r)
    return per


def _union(per, key=None):
    out = []
    for m, (s, r) in per.items():
        for qi in range(s.shape[0]):
            for j in range(s.shape[1]):
                out.append((qi, m, s[qi, j], r[qi, j], key(m, s[qi, j]) if key else s[qi, j]))
    return out


def test_modes_listed():
    assert set(MODES) >= {"none", "balanced", "calibrated", "centered"}


@pytest.mark.parametrize("mode", ["none", "centered"])
def test_none_is_plain_topk_over_union(mode):
    rng = np.random.default_rng(0)
    per = _lists(rng)
    scores, mods, rows = merge_topk(per, 10, mode)
    union = _union(per)
    for qi in range(6):
        want = sorted([u for u in union if u[0] == qi], key=lambda u: -u[4])[:10]
        assert list(mods[qi]) == [u[1] for u in want]
        assert list(rows[qi]) == [u[3] for u in want]
        assert np.allclose(scores[qi], [u[2] for u in want])


def test_calibrated_ranks_by_standardised_score():
    rng = np.random.default_rng(1)
    per = _lists(rng)
    cal = {"text": (0.9, 0.1), "image": (0.2, 0.5), "audio": (0.5, 0.2)}
    scores, mods, rows = merge_topk(per, 7, "calibrated", cal)
    union = _union(per, key=lambda m, s: (s - cal[m][0]) / cal[m][1])
    for qi in range(6):
        want = sorted([u for u in union if u[0] == qi], key=lambda u: -u[4])[:7]
        assert list(zip(mods[qi], rows[qi])) == [(u[1], u[3]) for u in want]
        assert np.allclose(scores[qi], [u[2] for u in want])  # raw scores are returned
    with pytest.raises(ValueError, match="calibration"):
        merge_topk(per, 7, "calibrated")


def test_balanced_equal_shares_and_own_order():
    rng = np.random.default_rng(2)
    per = _lists(rng)  # text scores are highest: "none" would return mostly audio/text
    scores, mods, rows = merge_topk(per, 9, "balanced")
    for qi in range(6):
        assert sorted(mods[qi]).count("text") == 3 and list(mods[qi]).count("image") == 3
        for m, (s, r) in per.items():
            got = [rows[qi, j] for j in range(9) if mods[qi, j] == m]
            assert got == list(r[qi, :len(got)])  # each modality's own ranking, in order


def test_balanced_follows_pool_share_and_fills_short_lists():
    rng = np.random.default_rng(3)
    per = _lists(rng, sizes={"text": 10, "image": 10, "audio": 2})
    _, mods, _ = merge_topk(per, 10, "balanced", pool_sizes={"text": 500, "image": 300,
                                                              "audio": 200})
    for qi in range(6):
        row = list(mods[qi])
        assert row.count("audio") == 2  # only two available
        assert row.count("text") == 5 and row.count("image") == 3  # text fills the audio gap


def test_absent_results_and_padding():
    s = np.array([[0.9, 0.5, -np.inf]])
    r = np.array([[3, 4, -1]])
    per = {"text": (s, r), "image": (np.array([[0.7]]), np.array([[1]]))}
    for mode in ("none", "balanced"):
        scores, mods, rows = merge_topk(per, 5, mode)
        assert list(rows[0]).count(-1) == 2 and list(mods[0]).count("") == 2
        assert set(rows[0][rows[0] >= 0]) == {3, 4, 1}
        assert np.isneginf(scores[0][rows[0] < 0]).all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown mixed-search mode"):
        merge_topk({"text": (np.zeros((1, 1)), np.zeros((1, 1)))}, 1, "loud")
    with pytest.raises(ValueError, match="image"):
        merge_topk({"text": (np.zeros((2, 1)), np.zeros((2, 1))),
                    "image": (np.zeros((3, 1)), np.zeros((3, 1)))}, 1, "none")


def test_balanced_ranks_chosen_items_by_score_across_modalities():
    rng = np.random.default_rng(4)
    per = _lists(rng)
    scores, mods, rows = merge_topk(per, 9, "balanced")
    quota, qmods, qrows = merge_topk(per, 9, "balanced", rank_chosen=False)
    for qi in range(6):
        assert np.all(np.diff(scores[qi]) <= 0)  # no raw-score inversions without stats
        assert sorted(zip(mods[qi], rows[qi])) == sorted(zip(qmods[qi], qrows[qi]))  # same items
    cal = {"text": (0.9, 0.1), "image": (0.2, 0.5), "audio": (0.5, 0.2)}
    scores, mods, _ = merge_topk(per, 9, "balanced", cal)
    for qi in range(6):
        z = [(s - cal[m][0]) / cal[m][1] for s, m in zip(scores[qi], mods[qi])]
        assert np.all(np.diff(z) <= 1e-9)  # ranked by calibrated score
        assert list(mods[qi]).count("text") == 3  # the quota still holds


def test_noise_floor_withholds_targets_without_signal():
    noise = {"image": [[0.5, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4]],  # 1000 pairs: floors to n=33
             "audio": [[0.5, 1.0, 2.0, 3.0], [0.0, 0.05, 0.1, 0.15]]}
    floors = noise_floors(noise, {"image": 10, "audio": 10, "text": 10}, factor=10)
    assert floors == pytest.approx({"image": 0.3, "audio": 0.1})  # log10(10 * 10) = 2
    per = {"image": (np.array([[0.9, 0.2], [0.25, 0.2]]), np.array([[1, 2], [3, 4]])),
           "audio": (np.array([[0.05, 0.0], [0.5, 0.1]]), np.array([[5, 6], [7, 8]])),
           "text": (np.array([[0.01, 0.0], [0.0, -0.1]]), np.array([[9, 10], [11, 12]]))}
    kept, low = apply_floor(per, floors)
    assert low["audio"].tolist() == [True, False] and low["image"].tolist() == [False, True]
    assert not low["text"].any()  # no quantiles: never withheld
    assert (kept["audio"][1][0] == -1).all() and (kept["image"][1][1] == -1).all()
    _, names, _ = merge_topk(kept, 4, "balanced")
    assert "audio" not in names[0] and "image" not in names[1]
    # when every target is at the floor none is withheld
    _, low = apply_floor({"image": per["image"]}, {"image": 5.0})
    assert not low["image"].any()


def test_no_floor_where_too_few_pairs_were_measured():
    noise = {"image": [[0.5, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4]]}  # 10^3 pairs measured
    assert noise_floors(noise, {"image": 30}) != {}  # 3 * 30 = 90 <= 1000 / 10
    assert noise_floors(noise, {"image": 40}) == {}  # 120 > 100: the quantile is a guess
