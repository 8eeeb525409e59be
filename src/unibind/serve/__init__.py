"""``unibind serve``: an HTTP API and a search page over one run (FastAPI + uvicorn).

    from unibind.serve import create_app
    app = create_app("runs/demo")          # any ASGI server; `unibind serve` adds read timeouts
                                           # and a connection cap (unibind.serve.server)
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeError", "ServeLimits", "Service", "create_app"]


def __getattr__(name: str) -> Any:  # fastapi is imported only when the app is wanted
    if name == "create_app":
        from unibind.serve.app import create_app

        return create_app
    if name == "Service":
        from unibind.serve.service import Service

        return Service
    if name in ("ServeError", "ServeLimits"):
        from unibind.serve import limits

        return getattr(limits, name)
    raise AttributeError(name)
