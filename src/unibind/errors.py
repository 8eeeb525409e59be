"""The one error base: anything unibind raises on purpose derives from ``UnibindError``.

Front ends catch only this: its message is shown as one line; any other exception is a bug and
keeps its traceback. ``UsageError`` marks a wrong value handed in by the caller (exit status 2),
``ItemsFailed`` marks a run where some items could not be processed (exit status 1).
"""

from __future__ import annotations


class UnibindError(Exception):
    """Base of every error unibind raises for bad input, bad artifacts or failed items."""

    exit_code = 2


class UsageError(UnibindError, ValueError):
    """A wrong argument value (unknown profile, dtype, device, modality, split ...)."""


class ItemsFailed(UnibindError):
    """Some items of a run failed; the rest was written."""

    exit_code = 1
