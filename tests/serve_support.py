"""Shared by the serve tests: a tiny-profile run, and a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .conftest import make_media_folder


def build_tiny_run(root: Path) -> Path:
    """data (3 labels x 3 of image + sound + caption) -> tiny features -> run -> metrics ->
    index."""
    from unibind.data.folder import build_folder_manifest
    from unibind.eval.evaluate import evaluate
    from unibind.features.extract import extract
    from unibind.search.index import build_index
    from unibind.training.config import override, preset
    from unibind.training.fit import train

    make_media_folder(root / "data", per_label=3)
    manifest = build_folder_manifest(root / "data", root / "manifest.parquet")
    extract(manifest, root / "features", profile="tiny")
    train(root / "features", root / "run", config=override(preset("default"), epochs=2))
    evaluate(root / "run", split="test")
    build_index(root / "run")
    return root / "run"


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yields the base URL and
    stops the server on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
