"""The service under attack, against a real uvicorn on 127.0.0.1 with short limits: tiny files
that claim huge decodes, budgets, a full upload pool, slow and half-sent requests, a connection
cap, foreign Host and Origin, malformed bodies, leaks of server paths, disconnects. Every loop is
bounded and every server stops by itself."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")

from tests.fixtures.serve import build_tiny_run, running_server  # noqa: E402
from unibind.search.space import Space  # noqa: E402
from unibind.serve.app import create_app  # noqa: E402
from unibind.serve.limits import ServeLimits  # noqa: E402
from unibind.serve.service import Service  # noqa: E402


@pytest.fixture(scope="module")
def run_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_run(tmp_path_factory.mktemp("serve-attacks"))


@pytest.fixture(scope="module")
def space(run_path: Path) -> Space:
    return Space.load(run_path)


@contextmanager
def server(space: Space, token: str | None = None, **caps) -> Iterator[tuple[str, int, Service]]:
    limits = ServeLimits(**caps)
    svc = Service(space, limits)
    try:
        with running_server(create_app(svc, token=token), limits) as url:
            yield "127.0.0.1", int(url.rsplit(":", 1)[1]), svc
    finally:
        svc.close()


def ask(port: int, method: str, path: str, body: bytes | None = None,
        headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def post_json(port: int, path: str, data: object, **headers: str) -> tuple[int, dict, bytes]:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return ask(port, "POST", path, body, {"Content-Type": "application/json", **headers})


def multipart(files: list[tuple[str, bytes]], fields: dict | None = None) -> tuple[bytes, str]:
    b = "unibindboundary"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    parts += [f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="q{n}"\r\n'
              f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n"
              for n, (k, data) in enumerate(files)]
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def upload(port: int, files: list[tuple[str, bytes]], **fields: str) -> tuple[int, dict, dict]:
    body, ctype = multipart(files, fields)
    status, headers, raw = ask(port, "POST", "/api/search", body, {"Content-Type": ctype})
    return status, headers, json.loads(raw)


def wav_header(rate: int, frames: int, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV whose header claims ``frames`` at ``rate`` Hz (the data is all there)."""
    data = bytes(2 * frames * channels)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
            struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def sound(seconds: float, rate: int = 8000, fmt: str = "WAV") -> bytes:
    path = Path(f"/tmp/unibind-attack-{threading.get_ident()}.{fmt.lower()}")
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=fmt)
    try:
        return path.read_bytes()
    finally:
        path.unlink()


def test_tiny_files_claiming_huge_decodes_are_refused_fast(space: Space):
    with server(space) as (_, port, _svc):
        t = time.monotonic()
        status, _, body = upload(port, [("audio", wav_header(rate=1, frames=500))])
        assert status == 422 and "sample rate 1 Hz is outside 2,000-384,000 Hz" in body["error"]
        status, _, body = upload(port, [("file", wav_header(rate=8000, frames=10, channels=200))])
        assert status == 422, body
        assert time.monotonic() - t < 5


def test_request_budget_of_audio_and_pixels(space: Space, run_path: Path):
    clip = sound(2.0)
    png = (run_path.parent / "data" / "dog" / "0.png").read_bytes()  # 48 x 40
    with server(space, request_audio_seconds=3, request_pixels=3000) as (_, port, _svc):
        assert upload(port, [("audio", clip)])[0] == 200
        status, _, body = upload(port, [("audio", clip), ("file", clip)])
        assert status == 413 and body["limit"] == "request_audio_seconds"
        status, _, body = upload(port, [("image", png), ("image", png)])
        assert status == 413 and body["limit"] == "request_pixels"
        flac = sound(700, rate=2000, fmt="FLAC")  # a long clip compresses to little
        status, _, body = upload(port, [("audio", flac)])
        assert status == 413 and body["limit"] == "max_audio_seconds"


def test_full_upload_pool_is_503_and_text_does_not_wait(space: Space, run_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    wav = (run_path.parent / "data" / "dog" / "0.wav").read_bytes()
    with server(space, media_workers=1, media_queue=1) as (_, port, svc):
        real = svc.search

        def slow(text, uploads, *rest):
            if uploads:
                time.sleep(1.0)
            return real(text, uploads, *rest)

        monkeypatch.setattr(svc, "search", slow)
        with ThreadPoolExecutor(4) as pool:
            floods = [pool.submit(upload, port, [("audio", wav)]) for _ in range(4)]
            time.sleep(0.3)
            t = time.monotonic()
            status, _, _ = post_json(port, "/api/search", {"text": "a dog barking"})
            text_s = time.monotonic() - t
            answers = [f.result() for f in floods]
    assert status == 200 and text_s < 0.9  # answered while the upload pool is busy
    codes = sorted(a[0] for a in answers)
    assert codes.count(200) == 2 and codes.count(503) == 2, codes
    assert all(a[1]["retry-after"] == "2" for a in answers if a[0] == 503)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_and_half_sent_requests_are_closed(space: Space):
    with server(space, header_timeout_s=0.5, body_timeout_s=0.7, keep_alive_s=1) as (
            host, port, _):
        idle = socket.create_connection((host, port))
        slow = socket.create_connection((host, port))
        slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
        half = socket.create_connection((host, port))
        half.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 100\r\n\r\n{\"text\":")
        t = time.monotonic()
        assert all(closed_within(s, 5) for s in (idle, slow, half))
        assert time.monotonic() - t < 4
        for s in (idle, slow, half):
            s.close()


def test_connection_cap(space: Space):
    with server(space, max_connections=4) as (host, port, _):
        held = [socket.create_connection((host, port)) for _ in range(4)]
        time.sleep(0.2)
        try:
            assert ask(port, "GET", "/api/health")[0] == 503
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)
        assert ask(port, "GET", "/api/health")[0] == 200


def test_host_and_origin(space: Space):
    with server(space, allowed_hosts=("search.example",)) as (_, port, _):
        assert ask(port, "GET", "/api/info", headers={"Host": "evil.example"})[0] == 421
        assert ask(port, "GET", "/api/health", headers={"Host": "127.0.0.2:80"})[0] == 200
        assert ask(port, "GET", "/api/health", headers={"Host": "[::1]:8000"})[0] == 200
        assert ask(port, "GET", "/api/health", headers={"Host": "search.example"})[0] == 200
        q = {"text": "rain"}
        assert post_json(port, "/api/search", q, Origin="http://evil.example")[0] == 403
        assert post_json(port, "/api/search", q, Origin="null")[0] == 403
        assert post_json(port, "/api/search", q, Origin=f"http://127.0.0.1:{port}")[0] == 200
        assert post_json(port, "/api/search", q)[0] == 200  # scripts send no Origin
        status = ask(port, "POST", "/api/search", b'{"text": "rain"}',
                     {"Content-Type": "text/plain"})[0]
        assert status == 415  # what a plain HTML form can post
    with server(space, token="s3cret") as (_, port, _):
        cookie = {"Cookie": "unibind_token=s3cret"}
        assert post_json(port, "/api/search", q, **cookie)[0] == 200
        assert post_json(port, "/api/search", q, Origin="http://evil.example",
                         **cookie)[0] == 403


@pytest.mark.parametrize("body", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"text": "x", "k": ' + b"7" * 5000 + b"}",
    b'{"text": "\\ud800"}',
    b'{"text": "x", "k": 1e999}',
    b"\xff\xfe{}",
])
def test_malformed_bodies_are_4xx(space: Space, body: bytes):
    with server(space) as (_, port, svc):
        item = svc.space.index.items["id"].iloc[0]
        for path in ("/api/search", f"/api/items/{item}/similar"):
            status, _, raw = post_json(port, path, body)
            assert 400 <= status < 500, (path, status, raw[:200])
            assert "error" in json.loads(raw)


def test_no_server_path_in_any_answer(space: Space, run_path: Path):
    secret = str(run_path.parent.resolve())
    long_id = "x" * 100_000
    with server(space) as (_, port, svc):
        items = svc.space.index.items
        item = items[items["modality"] == "image"]["id"].iloc[0]
        answers = [ask(port, "GET", "/api/info"), ask(port, "GET", f"/api/items/{item}"),
                   post_json(port, "/api/search", {"text": "dog", "k": 27}),
                   post_json(port, f"/api/items/{item}/similar", {}),
                   upload(port, [("image", b"\x89PNG\r\n\x1a\n" + bytes(100))])[1:],
                   ask(port, "GET", "/api/items/" + long_id)]
        assert "site-packages" not in str(answers) and secret not in str(answers)
        status, _, raw = answers[-1]
        assert status == 404 and len(raw) < 500
        assert ask(port, "GET", "/docs-assets/swagger-ui-bundle.js")[0] == 200
        assert ask(port, "GET", "/docs-assets/index.html")[0] == 404
        assert ask(port, "GET", "/docs-assets/../app.py")[0] == 404


def test_disconnect_is_one_info_line_and_413_is_readable(space: Space,
                                                         caplog: pytest.LogCaptureFixture):
    with server(space, max_upload_mb=0.05) as (host, port, _):
        with caplog.at_level(logging.INFO):
            s = socket.create_connection((host, port))
            s.sendall(b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"multipart/form-data; boundary=x\r\nContent-Length: 5000\r\n\r\n--x\r\n")
            time.sleep(0.3)
            s.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    "went away" in r.getMessage() for r in caplog.records):
                time.sleep(0.05)
        lines = [r for r in caplog.records if "went away" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.INFO
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # the whole body (3x the cap) sent before the answer is read, as urllib does: it is
        # drained, and the client reads a clean 413 instead of a reset connection
        body, ctype = multipart([("audio", bytes(150_000))])
        status, _, raw = ask(port, "POST", "/api/search", body, {"Content-Type": ctype})
        assert status == 413 and json.loads(raw)["limit"] == "max_upload_mb"


def test_messages_lose_server_paths():
    from unibind.serve.service import _no_paths

    said = _no_paths("cannot load '/root/.cache/models/clip/' (see /usr/lib/x.so), http://h/a")
    assert said == "cannot load 'clip' (see x.so), http://h/a"
