"""Run the app with uvicorn (h11), with the timeouts and caps a public-facing server needs.

uvicorn closes idle keep-alive connections, but not a connection that never finishes its request:
``TimedH11Protocol`` closes one whose headers have not all arrived within ``header_timeout_s`` or
whose body has not within ``body_timeout_s`` (slow-loris clients, half-sent requests). More than
``max_connections`` open connections get 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from unibind.serve.limits import ServeLimits

log = logging.getLogger("unibind.serve")


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus read deadlines for the headers and the body of each request."""

    header_timeout: float = 10.0
    body_timeout: float = 20.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_timer: asyncio.TimerHandle | None = None
        self._phase = "idle"
        self._arm(self.header_timeout, "headers")

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if getattr(self, "_read_timer", None) is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            client = ":".join(map(str, self.client)) if self.client else "a client"
            log.info("closing the connection of %s: its request %s did not arrive in time",
                     client, self._phase)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and self._phase == "idle":  # a new request starts
            self._arm(self.header_timeout, "headers")
        super().data_received(data)
        self._follow()

    def handle_events(self) -> None:
        super().handle_events()
        self._follow()

    def _follow(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._phase != "body":
            self._arm(self.body_timeout, "body")
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()
            self._phase = "idle"
        elif state is h11.IDLE and self._phase == "body":
            self._disarm()
            self._phase = "idle"

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol(limits: ServeLimits) -> type[TimedH11Protocol]:
    """``TimedH11Protocol`` with ``limits``' timeouts."""
    return type("UnibindH11Protocol", (TimedH11Protocol,), {
        "header_timeout": limits.header_timeout_s, "body_timeout": limits.body_timeout_s})


def config(app: Any, host: str, port: int, limits: ServeLimits, log_level: str = "info",
           **kw: Any) -> uvicorn.Config:
    """The uvicorn settings of ``unibind serve``."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol(limits),
                          timeout_keep_alive=int(max(1, limits.keep_alive_s)),
                          limit_concurrency=limits.max_connections,
                          h11_max_incomplete_event_size=64 * 1024, server_header=False, **kw)


def serve(app: Any, host: str, port: int, limits: ServeLimits, log_level: str = "info") -> None:
    """Serve ``app`` until interrupted."""
    uvicorn.Server(config(app, host, port, limits, log_level)).run()
