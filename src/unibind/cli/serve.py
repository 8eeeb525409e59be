"""``unibind serve RUN``: the HTTP API and the search page (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from unibind.cli._app import app

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve(run: Path = typer.Argument(..., help="Run folder (indexed with `unibind index`)."),
          host: str = typer.Option("127.0.0.1", "--host",
                                   help="Interface to bind (default: this machine only)."),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
          index: str = typer.Option(None, "--index", "--store",
                                    help="Index folder (default: RUN/index) or a store URI "
                                         "(milvus://PATH.db, http://HOST:19530)."),
          token: str = typer.Option(None, "--token", envvar="UNIBIND_TOKEN",
                                    help="Require `Authorization: Bearer TOKEN` on /api."),
          max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001,
                                              help="Largest request body."),
          max_pixels: int = typer.Option(40_000_000, "--max-pixels", min=1,
                                         help="Largest query image (width x height)."),
          max_audio_seconds: float = typer.Option(600.0, "--max-audio-seconds", min=0.1,
                                                  help="Longest query sound."),
          timeout: float = typer.Option(30.0, "--timeout", min=0.1,
                                        help="Seconds before a request is answered 504."),
          workers: int = typer.Option(8, "--workers", min=1,
                                      help="Threads that run queries (a bounded pool); each "
                                           "encoder still runs one (batched) forward at a time."),
          threads: int = typer.Option(0, "--threads", min=0,
                                      help="torch threads per forward (0 = torch's default; 1 "
                                           "steadies latency on a busy CPU)."),
          runtime: str = typer.Option("auto", "--runtime",
                                      help="Query encoders: auto (ONNX Runtime on the CPU where "
                                           "the model exports faithfully), torch, onnx."),
          log_level: str = typer.Option("info", "--log-level", help="uvicorn log level.")
          ) -> None:
    """Serve RUN: search page at http://HOST:PORT/, API docs at /docs. The run, its index and
    query encoders load once and are shared by every request."""
    from unibind.serve.limits import ServeLimits

    if threads:  # the edge is where thread counts are chosen (the library never changes them)
        import torch

        torch.set_num_threads(threads)
    limits = ServeLimits(max_upload_mb=max_upload_mb, max_pixels=max_pixels,
                         max_audio_seconds=max_audio_seconds, timeout_s=timeout,
                         workers=workers)
    start_server(run, host, port, index=index, token=token, limits=limits, log_level=log_level,
                 runtime=runtime)


def start_server(run: Path, host: str = "127.0.0.1", port: int = 8000, index: str | None = None,
                 token: str | None = None, limits: object | None = None,
                 log_level: str = "info", runtime: str = "auto") -> None:
    """Load RUN once and serve it with uvicorn until interrupted (also `unibind demo --serve`)."""
    import uvicorn

    from unibind.search.space import Space
    from unibind.serve.app import create_app

    if host not in LOCAL_HOSTS:
        typer.echo(f"warning: binding {host}: the search API and the run's files are reachable "
                   f"from other machines{'' if token else ' without a token (--token)'}",
                   err=True)
    space = Space.load(run, index, runtime=runtime)  # UnibindError: one line
    application = create_app(space, limits=limits, token=token)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"unibind: serving {run} at http://{shown}:{port}/  (API docs: /docs)", err=True)
    uvicorn.run(application, host=host, port=port, log_level=log_level)
