"""``unibind serve RUN``: the HTTP API and the search page (FastAPI + uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from unibind.cli._app import app
from unibind.errors import UsageError

TOKEN_ENV = "UNIBIND_TOKEN"


@app.command("serve")
def serve(run: Path = typer.Argument(..., help="Run folder (indexed with `unibind index`)."),
          host: str = typer.Option("127.0.0.1", "--host",
                                   help="Interface to bind (default: this machine only)."),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
          index: str = typer.Option(None, "--index", "--store",
                                    help="Index folder (default: RUN/index) or a store URI "
                                         "(milvus://PATH.db, http://HOST:19530)."),
          token_file: Path = typer.Option(None, "--token-file",
                                          help="Require `Authorization: Bearer TOKEN` on /api, "
                                               "the token read from this file (or set "
                                               f"{TOKEN_ENV})."),
          token: str = typer.Option(None, "--token", hidden=True,
                                    help="The token itself (visible in the process list: "
                                         f"prefer --token-file or {TOKEN_ENV})."),
          allowed_host: list[str] = typer.Option(
              [], "--allowed-host", help="Host name the server answers to besides loopback "
                                         "names (repeatable; '*' = any)."),
          max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001,
                                              help="Largest request body."),
          max_pixels: int = typer.Option(40_000_000, "--max-pixels", min=1,
                                         help="Largest query image (width x height)."),
          max_audio_seconds: float = typer.Option(600.0, "--max-audio-seconds", min=0.1,
                                                  help="Longest query sound."),
          request_pixels: int = typer.Option(64_000_000, "--request-pixels", min=1,
                                             help="All images of one request together."),
          request_audio_seconds: float = typer.Option(
              600.0, "--request-audio-seconds", min=0.1,
              help="All sounds of one request together."),
          timeout: float = typer.Option(30.0, "--timeout", min=0.1,
                                        help="Seconds before a request is answered 504."),
          workers: int = typer.Option(8, "--workers", min=1,
                                      help="Threads for text queries and look-ups; each "
                                           "encoder still runs one (batched) forward at a time."),
          media_workers: int = typer.Option(1, "--media-workers", min=1,
                                            help="Threads decoding and encoding uploads."),
          media_queue: int = typer.Option(16, "--media-queue", min=1,
                                          help="Uploads waiting for those; more get 503."),
          header_timeout: float = typer.Option(10.0, "--header-timeout", min=0.1,
                                               help="Seconds for a request's headers."),
          body_timeout: float = typer.Option(20.0, "--body-timeout", min=0.1,
                                             help="Seconds for a request's body."),
          keep_alive: float = typer.Option(5.0, "--keep-alive", min=1,
                                           help="Idle keep-alive connections close after this."),
          max_connections: int = typer.Option(64, "--max-connections", min=1,
                                              help="Open connections; more get 503."),
          threads: int = typer.Option(0, "--threads", min=0,
                                      help="torch threads per forward (0 = torch's default; 1 "
                                           "steadies latency on a busy CPU)."),
          log_level: str = typer.Option("info", "--log-level", help="uvicorn log level.")
          ) -> None:
    """Serve RUN: search page at http://HOST:PORT/, API docs at /docs. The run, its index and
    query encoders load once and are shared by every request."""
    from unibind.serve.limits import ServeLimits

    secret = read_token(token_file, token)
    if threads:  # the edge is where thread counts are chosen (the library never changes them)
        import torch

        torch.set_num_threads(threads)
    limits = ServeLimits(
        max_upload_mb=max_upload_mb, max_pixels=max_pixels, max_audio_seconds=max_audio_seconds,
        request_pixels=request_pixels, request_audio_seconds=request_audio_seconds,
        timeout_s=timeout, workers=workers, media_workers=media_workers,
        media_queue=media_queue, header_timeout_s=header_timeout, body_timeout_s=body_timeout,
        keep_alive_s=keep_alive, max_connections=max_connections,
        allowed_hosts=tuple(allowed_host))
    start_server(run, host, port, index=index, token=secret, limits=limits, log_level=log_level)


def read_token(token_file: Path | None, token: str | None = None) -> str | None:
    """The bearer token: ``--token-file``, else ``UNIBIND_TOKEN``, else ``--token``."""
    if token_file is not None:
        try:
            secret = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        if not secret:
            raise UsageError(f"--token-file {token_file} is empty")
        return secret
    return os.environ.get(TOKEN_ENV, "").strip() or token or None


def is_local(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    from unibind.serve.guard import is_loopback

    return is_loopback(host.strip().strip("[]").lower())


def start_server(run: Path, host: str = "127.0.0.1", port: int = 8000, index: str | None = None,
                 token: str | None = None, limits: object | None = None,
                 log_level: str = "info") -> None:
    """Load RUN once and serve it with uvicorn until interrupted (also `unibind demo --serve`)."""
    from unibind.serve.app import create_app
    from unibind.serve.limits import ServeLimits
    from unibind.serve.server import serve as run_server

    limits = limits or ServeLimits()
    if not is_local(host):
        typer.echo(f"warning: binding {host}: the search API and the run's files are reachable "
                   f"from other machines{'' if token else ' without a token (--token-file)'}; "
                   "they answer only Host names given with --allowed-host", err=True)
    application = create_app(run, index, limits=limits, token=token)  # UnibindError: one line
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"unibind: serving {run} at http://{shown}:{port}/  (API docs: /docs)", err=True)
    run_server(application, host, port, limits, log_level=log_level)
