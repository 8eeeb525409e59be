"""Bounded thread pools with their own queues, and request deadlines.

Text queries and media uploads run in different pools, so a flood of uploads never delays a text
search: uploads wait in a short queue of their own, and a full queue answers 503 with
``Retry-After`` at once instead of piling up. A job that outlives its request's timeout still
counts against its pool until it ends, and it stops at its next ``Deadline.check``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from unibind.serve.limits import ServeError


class Deadline:
    """The moment a request's work must stop; ``check()`` raises a 504 past it."""

    def __init__(self, seconds: float):
        self.seconds, self.at = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if self.left() <= 0:
            raise timed_out(self.seconds)


def timed_out(seconds: float) -> ServeError:
    """The 504 of a request that outlived ``timeout_s``."""
    return ServeError(f"the request took longer than timeout_s={seconds:g}", status=504,
                      limit="timeout_s", value=seconds)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class Pool:
    """``workers`` threads; at most ``queue`` more jobs waiting, beyond that 503."""

    def __init__(self, name: str, workers: int, queue: int, retry_after: int = 2):
        self.name, self.workers, self.capacity = name, workers, workers + queue
        self.retry_after = retry_after
        self.executor = ThreadPoolExecutor(max_workers=workers,
                                           thread_name_prefix=f"unibind-{name}")
        self._slots = threading.BoundedSemaphore(self.capacity)
        self.refused = 0

    def busy_error(self) -> ServeError:
        self.refused += 1
        return ServeError(f"the server is busy with {self.name} requests; retry in "
                          f"{self.retry_after} s", status=503,
                          headers={"Retry-After": str(self.retry_after)})

    def admit(self) -> None:
        """503 now if no slot is free (before a request's body is even parsed)."""
        if self.busy >= self.capacity:
            raise self.busy_error()

    async def run(self, deadline: Deadline, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker, answered by ``deadline`` at the latest."""
        if not self._slots.acquire(blocking=False):
            raise self.busy_error()
        try:
            future = self.executor.submit(self._job, deadline, fn, *args)
        except RuntimeError:  # shut down
            self._slots.release()
            raise ServeError("the server is shutting down", status=503) from None
        waited = asyncio.wrap_future(future)
        waited.add_done_callback(_retrieve)  # a late job's error is nobody's: not logged
        try:
            # shielded: a timed-out request leaves its job to finish (and free its slot)
            return await asyncio.wait_for(asyncio.shield(waited),
                                          timeout=max(0.0, deadline.left()))
        except asyncio.TimeoutError:
            raise timed_out(deadline.seconds) from None

    def _job(self, deadline: Deadline, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            deadline.check()  # waited past its time in the queue: do nothing
            return fn(*args)
        finally:
            self._slots.release()

    @property
    def busy(self) -> int:
        """Jobs running or queued."""
        return self.capacity - self._slots._value  # noqa: SLF001 - a gauge only

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
