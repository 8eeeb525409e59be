"""Concurrent queries share encoder forwards: a per-modality "group commit".

Each modality's encoder runs one forward at a time (fast tokenizers and some models must not be
called from two threads at once). A request queues its inputs; whichever waiting thread gets the
encoder next embeds everything queued so far (up to ``max_batch`` inputs) in one forward and hands
every request its rows. Under load this turns N forwards of one query into one forward of N; with
one client it is a plain call. If a batch fails (one bad input), its requests are retried one by
one so that only the bad one gets the error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np


class Batcher:
    """Serialised, batched calls of ``fn(items) -> [len(items), dim]`` from many threads."""

    def __init__(self, fn: Callable[[list], np.ndarray], max_batch: int = 32):
        self.fn, self.max_batch = fn, max(1, max_batch)
        self._run = threading.Lock()      # one forward at a time
        self._queue = threading.Lock()    # guards _pending
        self._pending: list[tuple[list, Future]] = []
        self.forwards = 0                 # counters, for tests and benchmarks
        self.requests = 0

    def __call__(self, items: Sequence[Any]) -> np.ndarray:
        mine: Future = Future()
        with self._queue:
            self._pending.append((list(items), mine))
        while not mine.done():
            with self._run:
                if mine.done():
                    break
                self._run_batch(self._take())
        return mine.result()

    def _take(self) -> list[tuple[list, Future]]:
        with self._queue:
            batch, size = [], 0
            while self._pending and (not batch or size + len(self._pending[0][0])
                                     <= self.max_batch):
                entry = self._pending.pop(0)
                batch.append(entry)
                size += len(entry[0])
            return batch

    def _run_batch(self, batch: list[tuple[list, Future]]) -> None:
        self.forwards += 1
        self.requests += len(batch)
        if len(batch) == 1:
            self._settle(*batch[0])
            return
        try:
            vecs = self.fn([x for items, _ in batch for x in items])
        except Exception:  # noqa: BLE001 - some input is bad: find which, one by one
            for items, fut in batch:
                self._settle(items, fut)
            return
        start = 0
        for items, fut in batch:
            fut.set_result(vecs[start:start + len(items)])
            start += len(items)

    def _settle(self, items: list, fut: Future) -> None:
        try:
            fut.set_result(self.fn(items))
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            fut.set_exception(exc)
