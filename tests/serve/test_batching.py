"""serve.batching.Batcher: concurrent callers share forwards, each gets its own rows, one bad
input fails only its own request, and calls never overlap."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from unibind.serve.batching import Batcher


def make_fn(log: list[int], active: list[int]):
    def fn(items: list) -> np.ndarray:
        active.append(1)
        assert len(active) == 1, "two forwards at once"
        log.append(len(items))
        time.sleep(0.01)
        if "bad" in items:
            active.pop()
            raise ValueError("bad input")
        active.pop()
        return np.array([[float(x), 2.0 * float(x)] for x in items])
    return fn


def test_concurrent_calls_share_forwards_and_get_their_rows():
    log, active = [], []
    batcher = Batcher(make_fn(log, active), max_batch=16)
    inputs = [[str(i)] if i % 3 else [str(i), str(i + 1000)] for i in range(64)]
    with ThreadPoolExecutor(32) as pool:
        got = list(pool.map(batcher, inputs))
    for items, out in zip(inputs, got):
        np.testing.assert_array_equal(out, [[float(x), 2.0 * float(x)] for x in items])
    assert sum(log) == sum(len(i) for i in inputs)
    assert max(log) <= 16 and len(log) < len(inputs)  # batches formed, none over the cap
    assert batcher.requests == len(inputs) and batcher.forwards == len(log)


def test_a_bad_input_fails_only_its_request():
    log, active = [], []
    batcher = Batcher(make_fn(log, active), max_batch=8)
    inputs = [["1"], ["bad"], ["2"], ["3"]] * 4
    barrier = threading.Barrier(len(inputs))

    def call(items):
        barrier.wait()
        try:
            return batcher(items)
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(len(inputs)) as pool:
        got = list(pool.map(call, inputs))
    for items, out in zip(inputs, got):
        if items == ["bad"]:
            assert out == "bad input"
        else:
            np.testing.assert_array_equal(out, [[float(items[0]), 2.0 * float(items[0])]])


def test_single_caller_is_a_plain_call():
    log, active = [], []
    batcher = Batcher(make_fn(log, active), max_batch=1)
    for i in range(3):
        np.testing.assert_array_equal(batcher([str(i)]), [[i, 2 * i]])
    assert log == [1, 1, 1]
    with pytest.raises(ValueError):
        batcher(["bad"])
