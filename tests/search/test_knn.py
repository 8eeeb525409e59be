"""Exact k-NN (bf16 screen + exact re-rank) against float64 brute force and faiss IndexFlatIP."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from unibind.search.knn import SMALL_EXACT, ExactKNN, brute_force


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    k = want[1].shape[1]
    np.testing.assert_array_equal(got[1][:, :k], want[1])
    np.testing.assert_allclose(got[0][:, :k], want[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("exact_below", [0, SMALL_EXACT], ids=["screened", "small-exact"])
@pytest.mark.parametrize("screen", ["bf16", "f32"])
@pytest.mark.parametrize("n,d,nq,k,block", [(3000, 32, 37, 10, 128), (700, 64, 5, 25, 192),
                                            (5, 16, 3, 10, None), (20000, 48, 2, 1, 4096)])
def test_matches_brute_force(screen: str, n: int, d: int, nq: int, k: int, block: int | None,
                             exact_below: int):
    rng = np.random.default_rng(n + d)
    x, q = unit(rng, n, d), unit(rng, nq, d)
    index = ExactKNN(d, screen=screen, block=block, exact_below=exact_below)
    index.add(x)
    got = index.search(q, k)
    assert_same(got, brute_force(x, q, min(k, n)))
    if k > n:  # missing results are padded
        assert (got[1][:, n:] == -1).all() and np.isneginf(got[0][:, n:]).all()


def test_near_duplicates_and_ties_are_exact():
    """Many scores within the bf16 error of each other: the screen must keep them all."""
    rng = np.random.default_rng(0)
    base = unit(rng, 1, 64)
    x = (base + 1e-4 * rng.standard_normal((4000, 64))).astype(np.float32)
    x[100:110] = x[5]  # exact duplicates: ties broken by row
    x = np.concatenate([x, unit(rng, 4000, 64)])
    q = np.concatenate([base, x[5:6], unit(rng, 3, 64)])
    index = ExactKNN(64, screen="bf16", block=256, exact_below=0)
    index.add(x)
    assert_same(index.search(q, 20), brute_force(x, q, 20))


def test_unnormalised_vectors():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 40)).astype(np.float32) * rng.uniform(0.1, 10, (2000, 1))
    q = rng.standard_normal((7, 40)).astype(np.float32) * 3
    index = ExactKNN(40, screen="bf16", block=256, exact_below=0)
    index.add(x.astype(np.float32))
    assert_same(index.search(q, 15), brute_force(x, q, 15))


def test_identical_to_faiss_flat():
    rng = np.random.default_rng(2)
    x, q = unit(rng, 20000, 64), unit(rng, 50, 64)
    flat = faiss.IndexFlatIP(64)
    flat.add(x)
    want_s, want_i = flat.search(q, 10)
    index = ExactKNN(64)
    index.add(x)
    got_s, got_i = index.search(q, 10)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_s, want_s, atol=1e-5)


@pytest.mark.parametrize("exact_below", [0, SMALL_EXACT], ids=["screened", "small-exact"])
def test_ranges_equal_filtered_brute_force(exact_below: int):
    rng = np.random.default_rng(3)
    x, q = unit(rng, 5000, 32), unit(rng, 9, 32)
    index = ExactKNN(32, block=512, exact_below=exact_below)
    index.add(x)
    ranges = [(0, 1200), (3000, 3100), (4500, 9999)]
    sub = np.concatenate([np.arange(a, min(b, 5000)) for a, b in ranges])
    scores, rows = index.search(q, 12, ranges=ranges)
    want_s, want_local = brute_force(x[sub], q, 12)
    np.testing.assert_array_equal(rows, sub[want_local])
    np.testing.assert_allclose(scores, want_s, atol=1e-6)


def test_incremental_add_equals_one_shot():
    rng = np.random.default_rng(4)
    x, q = unit(rng, 3000, 24), unit(rng, 6, 24)
    a, b = ExactKNN(24, block=256, exact_below=0), ExactKNN(24, block=256, exact_below=0)
    a.add(x)
    for part in np.array_split(x, 5):
        b.add(part)
    for got, want in zip(b.search(q, 8), a.search(q, 8)):
        np.testing.assert_array_equal(got, want)


def test_bad_input():
    index = ExactKNN(8)
    with pytest.raises(ValueError, match="shape"):
        index.add(np.zeros((3, 9), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((2, 8), np.nan, np.float32))
    index.add(np.eye(8, dtype=np.float32))
    with pytest.raises(ValueError, match="query dim"):
        index.search(np.zeros((1, 7), np.float32), 3)
    empty = ExactKNN(8)
    scores, rows = empty.search(np.ones((2, 8), np.float32), 3)
    assert (rows == -1).all() and np.isneginf(scores).all()
