"""The local extraction engine: decode/collate in a pool of worker threads, forward in the caller.

Decoding (Pillow, soundfile, soxr), preprocessing (numpy/torch ops) and tokenising (the Rust
fast tokenizers) release the GIL, so threads run them in parallel without copying batches
between processes. At most ``2 x workers`` prepared batches wait at any time (bounded memory);
batches are consumed in plan order, so each finished batch is one cache shard before the next
forward starts (a kill loses at most the batch in flight) and results never depend on the
number of workers.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from unibind.encoders import Encoder
from unibind.errors import Interrupted
from unibind.features import work
from unibind.features.cache import FeatureCache

log = logging.getLogger(__name__)


def default_workers() -> int:
    """The machine's cores (those this process may run on)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def encode_local(encoder: Encoder, batches: Sequence[Sequence[work.WorkItem]],
                 cache: FeatureCache, workers: int | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Run every planned batch; returns (vectors, errors), both keyed by item id.

    Ctrl-C raises ``Interrupted`` with the number of batches already stored in the cache."""
    workers = workers or default_workers()
    pin = encoder.device.type == "cuda"
    vectors: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    bar = tqdm(total=sum(len(b) for b in batches), desc=f"extract {encoder.modality}",
               unit="item", leave=False)
    todo = iter(batches)
    pending: deque[Future[work.Prepared]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unibind-decode") as pool:
        def submit() -> None:
            chunk = next(todo, None)
            if chunk is not None:
                pending.append(pool.submit(work.prepare_batch, encoder, chunk, pin))

        for _ in range(2 * workers):
            submit()
        saved = 0
        try:
            while pending:
                prepared = pending.popleft().result()
                submit()
                errors.update(prepared.bad)
                done, failed = work.run_batch(encoder, prepared, cache)
                vectors.update(done)
                errors.update(failed)
                bar.update(len(prepared.ids) + len(prepared.bad))
                saved += 1
        except KeyboardInterrupt:
            raise Interrupted(saved) from None
        finally:
            for future in pending:
                future.cancel()
            bar.close()
    return vectors, errors
