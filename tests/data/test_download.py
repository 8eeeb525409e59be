"""Resumable download against a loopback HTTP server (no network)."""

from __future__ import annotations

import hashlib

import pytest

from tests.fixtures import data_builders as fx
from unibind.data.download import DownloadError, download
from unibind.util.digests import sha256_file

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def server():
    with fx.LoopbackServer() as srv:
        yield srv


def test_full_download_checks_size_and_digest(server, tmp_path):
    server.files["/f.bin"] = fx.Served(PAYLOAD)
    out = download(server.url("f.bin"), tmp_path / "f.bin", sha256=DIGEST, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert sha256_file(out) == DIGEST
    assert not (tmp_path / "f.bin.part").exists()
    # an existing verified file is reused without a request
    n = len(server.requests)
    download(server.url("f.bin"), tmp_path / "f.bin", sha256=DIGEST, progress=False)
    assert len(server.requests) == n


def test_cut_connection_resumes_with_range(server, tmp_path):
    server.files["/f.bin"] = fx.Served(PAYLOAD, cuts=[100_000])
    out = download(server.url("f.bin"), tmp_path / "f.bin", sha256=DIGEST, progress=False,
                   backoff=0)
    assert out.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=100000-")]


def test_interrupted_download_resumes_on_next_call(server, tmp_path):
    server.files["/f.bin"] = fx.Served(PAYLOAD, cuts=[70_000, 150_000])
    with pytest.raises(DownloadError, match="interrupted at byte 70000"):
        download(server.url("f.bin"), tmp_path / "f.bin", retries=0, progress=False)
    part = tmp_path / "f.bin.part"
    assert part.stat().st_size == 70_000
    assert not (tmp_path / "f.bin").exists()
    with pytest.raises(DownloadError, match="interrupted at byte 150000"):
        download(server.url("f.bin"), tmp_path / "f.bin", retries=0, progress=False)
    out = download(server.url("f.bin"), tmp_path / "f.bin", sha256=DIGEST, retries=0,
                   progress=False)
    assert out.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=70000-", "bytes=150000-"]


def test_server_without_range_restarts(server, tmp_path):
    server.files["/f.bin"] = fx.Served(PAYLOAD, cuts=[50_000], honour_range=False)
    out = download(server.url("f.bin"), tmp_path / "f.bin", sha256=DIGEST, progress=False,
                   backoff=0)
    assert out.read_bytes() == PAYLOAD


def test_digest_mismatch_is_refused(server, tmp_path):
    server.files["/f.bin"] = fx.Served(PAYLOAD)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(server.url("f.bin"), tmp_path / "f.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_size_mismatch_and_http_error(server, tmp_path):
    server.files["/f.bin"] = fx.Served(PAYLOAD)
    with pytest.raises(DownloadError, match="size mismatch"):
        download(server.url("f.bin"), tmp_path / "f.bin", size=123, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("missing.bin"), tmp_path / "m.bin", progress=False)
