"""The one error base: anything unibind raises on purpose derives from ``UnibindError``.

Front ends catch only this: its message is shown as one line; any other exception is a bug and
keeps its traceback. ``UsageError`` marks a wrong value handed in by the caller (exit status 2),
``ItemsFailed`` marks a run where some items could not be processed (exit status 1).

Subclasses keep the builtin base callers used to catch (``ManifestError`` is still a
``ValueError``, an unknown profile still a ``KeyError``), so nothing that caught those breaks.
"""

from __future__ import annotations


class UnibindError(Exception):
    """Base of every error unibind raises for bad input, bad artifacts or failed items."""

    exit_code = 2

    def __str__(self) -> str:  # the message as given, never quoted (KeyError would quote it)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UsageError(UnibindError, ValueError):
    """A wrong argument value (unknown profile, dtype, device, modality, split ...)."""


class UnknownName(UsageError, KeyError):
    """A name that is not one of the allowed ones; the message lists those."""


class InputNotFound(UsageError, FileNotFoundError):
    """A file or folder the caller named does not exist (or holds nothing usable)."""


class ItemsFailed(UnibindError):
    """Some items of a run failed; the rest was written."""

    exit_code = 1


def unknown(what: str, value: object, allowed: object) -> UnknownName:
    """``UnknownName("unknown profile 'x'; choose from a, b, c")`` for ``raise``."""
    names = ", ".join(str(a) for a in allowed)
    return UnknownName(f"unknown {what} {value!r}; choose from {names}")


class Interrupted(UnibindError):
    """The user stopped a long stage (Ctrl-C); what finished is kept and a re-run resumes."""

    exit_code = 130

    def __init__(self, batches: int = 0):
        self.batches = batches
        super().__init__(f"interrupted; {batches} batches saved, re-run to resume")
