"""The flood case of `benchmarks/serve.py --flood`: text search latency while clients loop uploads.

Three phases against one server process (started as a user starts it):
1. text searches alone (baseline),
2. the same text searches while ``--flood-clients`` threads loop a 1 KB WAV whose header says
   1 Hz x 500 frames ("500 s": before header checks this cost 20 s and 3 GB per upload),
3. one request carrying eight 600 s FLAC clips (48 kHz, silence: a few KB each), then one
   request with a single 599 s clip (accepted: its decode and encode cost).
Server memory (RSS, sampled every 0.1 s) before, peak and after. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf


def fake_long_wav() -> bytes:
    """1,044 bytes: a WAV header claiming 500 frames at 1 Hz, and the 500 frames."""
    data = bytes(1000)
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", len(data)) + data)


def silent_flac(seconds: float, rate: int = 48_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * rate), np.float32), rate, format="FLAC")
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Memory(threading.Thread):
    """Samples a process's RSS until stopped; ``peak`` in MB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.1)


def files_body(files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    b = "floodboundary"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
             for field, name, data in files]
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def text_loop(port: int, stop: threading.Event, out: list, pause: float = 0.05) -> None:
    from benchmarks.serve import Client, text_body

    c, i = Client(port), 0
    while not stop.is_set():
        status, sec = c.ask("POST", "/api/search", text_body(i))
        out.append((status, sec))
        i += 1
        time.sleep(pause)


def upload_loop(port: int, stop: threading.Event, body: bytes, ctype: str, out: list) -> None:
    from benchmarks.serve import Client

    c = Client(port)
    while not stop.is_set():
        try:
            out.append(c.ask("POST", "/api/search", body, ctype))
        except OSError:
            out.append((0, 0.0))
            c = Client(port)


def timed(port: int, seconds: float, uploaders: int, body: bytes, ctype: str
          ) -> tuple[list, list]:
    stop, text, uploads = threading.Event(), [], []
    threads = [threading.Thread(target=text_loop, args=(port, stop, text))]
    threads += [threading.Thread(target=upload_loop, args=(port, stop, body, ctype, uploads))
                for _ in range(uploaders)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    return text, uploads


def ms(xs: list[float], q: float) -> str:
    return f"{1000 * float(np.percentile(xs, q)):.0f}" if xs else "-"


def flood(run: Path, source: str, args: argparse.Namespace, threads: int, start_server,
          free_port) -> None:
    port = free_port()
    proc = start_server(run, port, args.workers, threads,
                        ("--media-workers", str(args.media_workers)))
    mem = Memory(proc.pid)
    mem.start()
    try:
        from benchmarks.serve import Client, text_body

        c = Client(port)
        for i in range(5):
            c.ask("POST", "/api/search", text_body(90_000 + i))  # warm-up
        start_mb = rss_mb(proc.pid)
        seconds = min(args.flood_seconds, 20.0)
        body, ctype = files_body([("audio", "fake500s.wav", fake_long_wav())])
        alone, _ = timed(port, seconds, 0, body, ctype)
        flood_text, uploads = timed(port, args.flood_seconds, args.flood_clients, body, ctype)
        after_flood_mb = rss_mb(proc.pid)
        clip = silent_flac(600)
        body8, ctype8 = files_body([("audio", f"clip{n}.flac", clip) for n in range(8)])
        status8, sec8 = Client(port).ask("POST", "/api/search", body8, ctype8)
        before_one = rss_mb(proc.pid)
        mem.peak = 0.0
        body1, ctype1 = files_body([("audio", "clip.flac", silent_flac(599))])
        status1, sec1 = Client(port).ask("POST", "/api/search", body1, ctype1)
        time.sleep(0.3)
        peak_one = mem.peak
        end_mb = rss_mb(proc.pid)
    finally:
        mem.stop.set()
        proc.terminate()
        proc.wait(timeout=30)

    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nrun: {run} ({source}); {os.cpu_count()} CPUs, load average {load_avg}; "
          f"server --workers {args.workers} --media-workers {args.media_workers} "
          f"--threads {threads or 'default'}\n")
    print("| phase | requests | n | answers | p50 ms | p99 ms | max ms |")
    print("|---|---|---:|---|---:|---:|---:|")
    for name, what, rows in (("alone", "text search", alone),
                             (f"{args.flood_clients} clients flooding", "text search",
                              flood_text),
                             (f"{args.flood_clients} clients flooding",
                              "upload of the 1 KB '500 s' WAV", uploads)):
        secs = [sec for st, sec in rows if st]
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(st for st, _ in rows).items()))
        print(f"| {name} | {what} | {len(rows)} | {codes} | {ms(secs, 50)} | {ms(secs, 99)} | "
              f"{ms(secs, 100)} |")
    print(f"\neight 600 s FLAC clips ({len(clip) // 1024} KB each) in one request: "
          f"{status8} in {1000 * sec8:.0f} ms")
    print(f"one 599 s clip: {status1} in {1000 * sec1:.0f} ms, server memory peak "
          f"+{peak_one - before_one:.0f} MB over {before_one:.0f} MB")
    print(f"server memory: {start_mb:.0f} MB before the flood, {after_flood_mb:.0f} MB after it "
          f"(+{after_flood_mb - start_mb:.0f} MB), peak {mem.peak:.0f} MB, "
          f"{end_mb:.0f} MB at the end ({args.flood_seconds:g} s flood)")
