"""Atomic writes: a reader (or a crash) never sees a half-written file or folder.

The one helper for every artifact unibind writes. ``atomic_file``: a temp file beside the
target, fsynced, renamed over it, the folder fsynced. ``atomic_folder``: a staging folder beside
the target, its files fsynced, then swapped in. On Linux the swap is one ``renameat2(
RENAME_EXCHANGE)``: the target name holds the old or the new folder at every instant. Elsewhere
it is two renames (old aside, new in); a kill between them is undone by ``recover_folder``, which
every loader calls on open and which also removes staging folders of dead processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from unibind.errors import UnibindError

log = logging.getLogger(__name__)


class SwapError(UnibindError, OSError):
    """The system refused an atomic swap of two paths (errno, reason and path as OSError)."""

# Fault injection for tests: called with the name of each step of a folder swap
# ("staged", "moved-old", "swapped"); a test may kill the process there.
FAULT: Callable[[str], None] | None = None
USE_EXCHANGE = True  # tests turn this off to exercise the two-rename fallback

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _step(name: str) -> None:
    if FAULT is not None:
        FAULT(name)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it (``/proc``), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_created(path: str | os.PathLike, folder: bool) -> None:
    """Give a temp file (0600) or folder (0700) the mode ``open``/``mkdir`` would have given:
    0666 or 0777 less the umask, so that artifacts are shared as the user's other files are."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        _as_created(tmp, folder=False)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    if not USE_EXCHANGE:
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise SwapError(err, os.strerror(err), str(a))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(path: Path, kind: str) -> list[tuple[Path, int]]:
    """Staging (``tmp``) or set-aside (``old``) folders of ``path`` with their writer's pid."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.{kind}-(\d+)-[^/]+$")
    out = []
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                out.append((p, int(m.group(1))))
    return out


def recover_folder(path: str | os.PathLike) -> None:
    """Undo what a killed swap left behind: restore a set-aside folder when the target is
    missing, remove staging and set-aside folders of processes that are gone."""
    path = Path(path)
    dead_old = [(p, pid) for p, pid in _siblings(path, "old") if not _pid_alive(pid)]
    if not path.exists() and dead_old:
        newest = max(dead_old, key=lambda x: x[0].stat().st_mtime)[0]
        os.replace(newest, path)
        log.warning("restored %s from an interrupted swap", path)
        dead_old = [x for x in dead_old if x[0] != newest]
    for p, pid in dead_old + _siblings(path, "tmp"):
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            log.info("removed stale staging folder %s", p)


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(root))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``path`` (old or new at any time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-"))
    try:
        _as_created(tmp, folder=True)
        yield tmp
        _fsync_tree(tmp)
        _step("staged")
        if path.exists() and _exchange(tmp, path):
            _step("swapped")
            shutil.rmtree(tmp, ignore_errors=True)  # it now holds the old folder
        else:
            old = None
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent,
                                            prefix=f".{path.name}.old-{os.getpid()}-"))
                os.replace(path, old)
                _step("moved-old")
            os.replace(tmp, path)
            _step("swapped")
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
