"""Resumable HTTP(S) download with a progress bar and a size / sha256 check.

Bytes go to ``DEST.part``; a cut connection is retried with an HTTP ``Range`` request that continues
where the file stopped (a server that ignores ``Range`` restarts it). The finished file is checked
against the expected size and sha256 (when given) before it is renamed to ``DEST``; a mismatch
deletes the partial file and raises ``DownloadError``.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from unibind.errors import UnibindError
from unibind.util.digests import sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 16
USER_AGENT = "unibind-download/0.1"


class DownloadError(UnibindError, RuntimeError):
    """A download that failed or did not match its expected size or digest."""


def _check(path: Path, url: str, size: int | None, sha256: str | None) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{url}: size mismatch, expected {size} bytes, got {actual}; "
                            "the file was removed, run again to download it afresh")
    if sha256:
        got = sha256_file(path)
        if got.lower() != sha256.lower():
            path.unlink(missing_ok=True)
            raise DownloadError(f"{url}: sha256 mismatch, expected {sha256.lower()}, got {got}; "
                                "the file was removed (corrupt or changed upstream)")


def _total_from(resp: http.client.HTTPResponse, offset: int) -> int | None:
    """The full size of the resource from Content-Range (206) or Content-Length (200)."""
    content_range = resp.headers.get("Content-Range", "")
    match = re.match(r"bytes \d+-\d+/(\d+)", content_range)
    if match:
        return int(match.group(1))
    length = resp.headers.get("Content-Length")
    return int(length) + offset if length is not None else None


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> int | None:
    """One request: append to ``part`` from its current size. Returns the total size if known."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: the part is already complete
            length = exc.headers.get("Content-Range", "")
            match = re.match(r"bytes \*/(\d+)", length)
            return int(match.group(1)) if match else offset
        raise
    with resp:
        if offset and resp.status != 206:
            log.warning("%s: server ignored the Range request; restarting from byte 0", url)
            offset = 0
        total = _total_from(resp, offset)
        mode = "ab" if offset else "wb"
        with open(part, mode) as fh, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=part.name[:-5],
                                          disable=not progress, leave=False) as bar:
            while block := resp.read(CHUNK):
                fh.write(block)
                bar.update(len(block))
    got = part.stat().st_size
    if total is not None and got < total:
        raise http.client.IncompleteRead(b"", total - got)
    return total


def download(url: str, dest: str | os.PathLike, *, size: int | None = None,
             sha256: str | None = None, retries: int = 5, timeout: float = 60.0,
             backoff: float = 1.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download; return ``dest``.

    An existing ``dest`` that passes the checks is reused without a request. ``retries`` counts the
    extra attempts after a cut connection or a network error; each one resumes with ``Range``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        _check(dest, url, size, sha256)
        log.info("%s: already downloaded (%d bytes)", dest, dest.stat().st_size)
        return dest
    part = dest.with_name(dest.name + ".part")
    if part.exists():
        log.info("%s: resuming at byte %d", url, part.stat().st_size)
    attempt = 0
    while True:
        try:
            total = _fetch_once(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                raise DownloadError(f"{url}: download interrupted at byte {have} after "
                                    f"{attempt} attempt(s) ({exc!r}); run again to resume") from exc
            log.warning("%s: connection cut at byte %d (%r); resuming (retry %d/%d)",
                        url, have, exc, attempt, retries)
            time.sleep(backoff * attempt)
    if size is None and total is not None:
        size = total
    _check(part, url, size, sha256)
    os.replace(part, dest)
    log.info("%s: downloaded %d bytes to %s", url, dest.stat().st_size, dest)
    return dest
