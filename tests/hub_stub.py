"""A loopback stand-in for the few Hugging Face hub endpoints unibind and transformers use.

``/api/models/<repo>/revision/<rev>`` (model info: the commit), ``/<repo>/resolve/<rev>/<file>``
(file download, HEAD for metadata) and ``/api/models/<repo>/tree/<rev>`` (listing). It serves
one repo from a local folder, bound to 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class HubStub:
    def __init__(self, repo: str, folder: Path, commit: str):
        self.repo, self.folder, self.commit = repo, Path(folder), commit
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _file(self) -> Path | None:
                prefix = f"/{stub.repo}/resolve/"
                if not self.path.startswith(prefix):
                    return None
                _rev, _, name = self.path[len(prefix):].split("?")[0].partition("/")
                f = stub.folder / name
                return f if name and f.is_file() else None

            def _send(self, code: int, body: bytes, headers: dict[str, str], head: bool) -> None:
                self.send_response(code)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _handle(self, head: bool) -> None:
                stub.requests.append(f"{self.command} {self.path}")
                tree = f"/api/models/{stub.repo}/tree/"
                if self.path.startswith(tree):  # listing: files at the root, nothing below
                    sub = self.path[len(tree):].split("?")[0].partition("/")[2]
                    listing = [] if sub else [
                        {"type": "file", "path": p.name, "size": p.stat().st_size,
                         "oid": hashlib.sha1(p.read_bytes()).hexdigest()}
                        for p in sorted(stub.folder.iterdir())]
                    return self._send(200, json.dumps(listing).encode(),
                                      {"Content-Type": "application/json"}, head)
                if self.path.startswith(f"/api/models/{stub.repo}"):
                    body = json.dumps({"id": stub.repo, "sha": stub.commit, "siblings": [
                        {"rfilename": p.name} for p in sorted(stub.folder.iterdir())]}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"}, head)
                f = self._file()
                if f is None:
                    return self._send(404, b"{}", {"X-Error-Code": "EntryNotFound",
                                                   "Content-Type": "application/json"}, head)
                data = f.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                self._send(200, data, {"X-Repo-Commit": stub.commit, "ETag": f'"{etag}"',
                                       "Content-Type": "application/octet-stream"}, head)

            def do_GET(self) -> None:  # noqa: N802
                self._handle(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._handle(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
