"""The service's front door, an ASGI layer before any route: who may call, and how much.

- Host allow-list: loopback names (``localhost``, ``127.x.x.x``, ``::1``) plus
  ``ServeLimits.allowed_hosts`` (``*`` = any); another ``Host`` gets 421. This stops DNS
  rebinding, where a foreign web page reaches the server under its own name.
- Origin: a state-changing request (POST, ...) whose ``Origin`` is not the server itself gets 403
  (cross-site request forgery from a page the user happens to visit).
- Content type: ``POST /api/...`` bodies are ``application/json`` (or multipart for
  ``/api/search``); anything else gets 415, so a plain HTML form cannot post.
- Body size: JSON bodies up to ``max_json_kb``, others up to ``max_upload_mb``, checked by
  ``Content-Length`` and while streaming. An oversized body is read and discarded (up to a bound)
  before the 413 is sent, so that a client that sends everything first still reads the answer.
- A client that goes away mid-request is one INFO line, not an error with a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from unibind.serve.limits import ServeError, ServeLimits, too_large

log = logging.getLogger("unibind.serve")

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DRAIN_FACTOR = 4  # an oversized body is drained up to this many times the cap, else cut off


def host_name(host: str) -> str:
    """``Host`` header value -> lower-case name without port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """``localhost`` and friends, any 127.x.x.x, ``::1``."""
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a ``Host`` header names this server: loopback, or in ``allowed`` (``*``: any)."""
    if "*" in allowed:
        return True
    name = host_name(host)
    return is_loopback(name) or name in {host_name(a) for a in allowed}


class Guard:
    """Host, Origin, content-type and body-size checks in front of ``app``."""

    def __init__(self, app: ASGIApp, limits: ServeLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        refusal = self.refuse(scope, headers)
        if refusal is not None:  # a small body is read first (a clean answer), else cut off
            length = headers.get("content-length", "0")
            small = length.isdigit() and int(length) <= self.limits.max_json_bytes
            return await self.answer(refusal, scope, receive, send,
                                     drain=small and scope["method"] not in SAFE_METHODS)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        cap = (self.limits.max_json_bytes if ctype == "application/json"
               else self.limits.max_upload_bytes)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            return await self.answer(too_large(self.limits, cap != self.limits.max_upload_bytes),
                                     scope, receive, send, drain=int(length) <= DRAIN_FACTOR * cap)
        seen, done = 0, False

        async def counted() -> Message:
            nonlocal seen, done
            message = await receive()
            seen += len(message.get("body", b""))
            done = not message.get("more_body", False)
            if seen > cap:
                if not done:
                    await _drain(receive, DRAIN_FACTOR * cap - seen)
                raise too_large(self.limits, cap != self.limits.max_upload_bytes)
            return message

        try:
            await self.app(scope, counted, send)
        except ClientDisconnect:
            client = scope.get("client") or ("?", 0)
            log.info("client %s:%s went away before sending the whole request (%s %s)",
                     client[0], client[1], scope["method"], scope["path"][:80])

    def refuse(self, scope: Scope, headers: dict[str, str]) -> ServeError | None:
        """Why this request is refused before it reaches a route, if it is."""
        host = headers.get("host")
        if host is not None and not host_allowed(host, self.limits.allowed_hosts):
            return ServeError(f"host {host_name(host)[:80]!r} is not served here (start the "
                              "server with --allowed-host NAME to accept it)", status=421)
        method, path = scope["method"], scope["path"]
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            try:
                netloc = urlsplit(origin).netloc.lower()
            except ValueError:
                netloc = ""
            if not netloc or netloc != (host or "").strip().lower():
                return ServeError("cross-origin requests are refused (Origin "
                                  f"{origin[:80]!r} is not this server)", status=403)
        elif headers.get("sec-fetch-site") == "cross-site":
            return ServeError("cross-site requests are refused", status=403)
        if method == "POST" and path.startswith("/api/"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            multipart = path == "/api/search" and ctype == "multipart/form-data"
            has_body = headers.get("content-length", "0") != "0" or \
                "transfer-encoding" in headers
            if has_body and ctype != "application/json" and not multipart:
                what = "application/json or multipart/form-data" if path == "/api/search" \
                    else "application/json"
                return ServeError(f"send the body as {what}, not {ctype[:60] or 'untyped'}",
                                  status=415)
        return None

    async def answer(self, err: ServeError, scope: Scope, receive: Receive, send: Send,
                     drain: bool) -> None:
        headers = [(b"content-type", b"application/json")]
        headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        if drain:
            cap = DRAIN_FACTOR * self.limits.max_upload_bytes
            if not await _drain(receive, cap):
                headers.append((b"connection", b"close"))
        elif scope["method"] not in SAFE_METHODS:
            headers.append((b"connection", b"close"))
        body = json.dumps(err.body()).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of a request body, at most ``budget`` bytes; True if it ended."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False
