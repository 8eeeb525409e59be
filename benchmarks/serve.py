"""`unibind serve` over loopback: warm query latency per modality, and many concurrent clients.

    .venv/bin/python benchmarks/serve.py                 # the demo run (~/.cache/unibind/demo/run)
    .venv/bin/python benchmarks/serve.py RUN --clients 32 --requests 1000
    .venv/bin/python benchmarks/serve.py --screenshot docs/serve.png   # also a page screenshot
    .venv/bin/python benchmarks/serve.py --threads 0,1   # torch default vs 1 thread, in turn
    .venv/bin/python benchmarks/serve.py --flood         # text latency under an upload flood

The server is a separate process (`unibind serve RUN`, as a user starts it); clients are threads
here, each with its own keep-alive HTTP/1.1 connection. Without the demo run (`make demo`) a
small run is built from the tiny profile on generated media (numbers then say little about real
encoders). Latencies are wall-clock per request, as the client sees them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ["dog", "cat", "bird", "rain", "bell", "car", "train", "tree", "flower", "water", "music",
         "drum", "horse", "cow", "boat", "star", "moon", "fire", "snow", "house", "apple", "ghost"]


def demo_run() -> Path:
    from unibind.util.runtime import cache_root

    return cache_root() / "demo" / "run"


def tiny_run() -> Path:
    from tests.fixtures.serve import build_tiny_run

    return build_tiny_run(Path(tempfile.mkdtemp(prefix="unibind-bench-serve-")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, workers: int, threads: int,
                 extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep +
           os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-c", "from unibind.cli import main; main()", "serve", str(run),
           "--port", str(port), "--workers", str(workers), "--threads", str(threads),
           "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def multipart(field: str, path: Path, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                 f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection; ``ask`` returns (status, seconds)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def ask(self, method: str, path: str, body: bytes | None = None,
            ctype: str = "application/json") -> tuple[int, float]:
        t = time.perf_counter()
        self.conn.request(method, path, body=body, headers={"Content-Type": ctype})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t


def text_body(i: int) -> bytes:
    rng = np.random.default_rng(i)
    words = " ".join(rng.choice(WORDS, size=3))
    return json.dumps({"text": f"a {words}", "k": 10}).encode()


def series(client: Client, n: int, make) -> list[float]:
    out = []
    for i in range(n):
        status, sec = client.ask(*make(i))
        if status != 200:
            raise RuntimeError(f"status {status}")
        out.append(sec)
    return out


def load(port: int, clients: int, requests: int) -> tuple[int, float, list[float]]:
    local = threading.local()

    def one(i: int) -> tuple[int, float]:
        if not hasattr(local, "c"):
            local.c = Client(port)
        try:
            return local.c.ask("POST", "/api/search", text_body(10_000 + i))
        except OSError:
            return 0, 0.0

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t
    return sum(s != 200 for s, _ in done), wall, [sec for s, sec in done if s == 200]


def ms(xs: list[float], q: float) -> str:
    return f"{1000 * float(np.percentile(xs, q)):.1f}"


def first_file(run: Path, modality: str) -> Path:
    items = pd.read_parquet(run / "index" / "items.parquet")
    return Path(items[items["modality"] == modality]["path"].iloc[0])


def screenshot(port: int, out: Path, query: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 860})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready='1']")
        page.fill("#q", query)
        page.wait_for_selector(".result")
        page.wait_for_function("[...document.querySelectorAll('.result img')]"
                               ".every(i => i.complete)")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path, help="run folder (default: the demo run)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--text-queries", type=int, default=300)
    ap.add_argument("--media-queries", type=int, default=30)
    ap.add_argument("--workers", type=int, default=8, help="server --workers")
    ap.add_argument("--threads", default="0",
                    help="server --threads settings to compare, e.g. 0,1 (0 = torch's default)")
    ap.add_argument("--screenshot", type=Path, help="also save a page screenshot here")
    ap.add_argument("--flood", action="store_true",
                    help="instead: text latency while clients flood uploads (see flood.py)")
    ap.add_argument("--flood-clients", type=int, default=10)
    ap.add_argument("--flood-seconds", type=float, default=60.0)
    ap.add_argument("--media-workers", type=int, default=1, help="server --media-workers")
    args = ap.parse_args()

    run = args.run or demo_run()
    source = "given run"
    if args.run is None:
        source = "demo run (offline profile)"
        if not (run / "index" / "index.json").is_file():
            run, source = tiny_run(), "tiny-profile run on generated media (no demo run found)"
    settings = [int(x) for x in args.threads.split(",")]
    if args.flood:
        from benchmarks.serve_flood import flood

        try:
            for th in settings:  # one table per setting, in turn
                flood(run, source, args, th, start_server, free_port)
        finally:
            if source.startswith("tiny"):
                shutil.rmtree(run.parent, ignore_errors=True)
        return
    try:
        results = [(th, *measure(run, args, th, args.screenshot if n == 0 else None))
                   for n, th in enumerate(settings)]
    finally:
        if source.startswith("tiny"):
            shutil.rmtree(run.parent, ignore_errors=True)

    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nrun: {run} ({source}); {os.cpu_count()} CPUs, load average {load_avg}\n")
    print("| server --threads | requests | n | p50 ms | p90 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for th, rows, _, _, _ in results:
        for name, xs in rows:
            print(f"| {th or 'default'} | {name} | {len(xs)} | {ms(xs, 50)} | {ms(xs, 90)} | "
                  f"{ms(xs, 99)} |")
    print()
    for th, _, errors, wall, start_s in results:
        print(f"--threads {th or 'default'}: {args.requests} text searches from {args.clients} "
              f"concurrent clients: {errors} errors, {wall:.1f} s, "
              f"{args.requests / wall:.0f} requests/s (server start {start_s:.1f} s)")


def measure(run: Path, args: argparse.Namespace, threads: int, shot: Path | None) -> tuple:
    """One server (``--threads``), every series; (rows, errors, wall s, start s)."""
    port = free_port()
    t = time.perf_counter()
    proc = start_server(run, port, args.workers, threads)
    start_s = time.perf_counter() - t
    try:
        c = Client(port)
        series(c, 5, lambda i: ("POST", "/api/search", text_body(50_000 + i)))  # warm-up
        text = series(c, args.text_queries, lambda i: ("POST", "/api/search", text_body(i)))
        rows = [("text query (warm)", text)]
        for m in ("image", "audio"):
            body, ctype = multipart(m, first_file(run, m), {"k": "10"})
            series(c, 2, lambda i: ("POST", "/api/search", body, ctype))
            rows.append((f"{m} upload query", series(
                c, args.media_queries, lambda i: ("POST", "/api/search", body, ctype))))
        sim = json.dumps({"k": 10}).encode()
        ids = pd.read_parquet(run / "index" / "items.parquet")["id"].tolist()
        rows.append(("similar (by item)", series(c, args.text_queries, lambda i: (
            "POST", f"/api/items/{quote(ids[i % len(ids)], safe='')}/similar", sim))))
        errors, wall, loaded = load(port, args.clients, args.requests)
        rows.append((f"text, {args.clients} concurrent clients", loaded))
        if shot:
            screenshot(port, shot, "a dog barking")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows, errors, wall, start_s


if __name__ == "__main__":
    main()
