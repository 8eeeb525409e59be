"""Third-party chatter off while unibind loads a model, restored afterwards.

transformers draws a "Loading weights" bar and prints a load report on every
``from_pretrained``; at unibind's default level the user sees unibind's own lines only. The
settings are the caller's again when the block ends (nothing global changes for good)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' progress bars and messages below ERROR off for the block, unless the
    caller asked for debug logging (``-v``)."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
