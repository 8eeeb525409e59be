"""What the service accepts: its limits, and checks of uploaded query files against them.

Uploads are judged by their bytes, never by their names: each uploadable modality of the registry
has a ``sniff`` hook that recognises its files and reads, from the header alone, what decoding
them would cost (pixels, seconds of audio). Costs are checked per file and per request (a budget
summed over every upload of the request) before anything is decoded. Every refusal is a
``ServeError`` carrying the HTTP status and, for a cap, the name and value of the limit it hit.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unibind.errors import UnibindError
from unibind.media.decode import MediaError
from unibind.modalities import get_modality, uploadable

#: cost name (from a ``sniff`` hook) -> (per-file limit, per-request limit, how it reads)
COSTS = {"pixels": ("max_pixels", "request_pixels", "{:.0f} pixels"),
         "audio_seconds": ("max_audio_seconds", "request_audio_seconds", "{:.1f} s of audio")}


class ServeError(UnibindError):
    """A request the service refuses; ``status`` is the HTTP status, ``limit`` the cap it hit."""

    def __init__(self, message: str, status: int = 422, limit: str | None = None,
                 value: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message, self.status, self.limit, self.value = message, status, limit, value
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.limit:
            out["limit"], out["value"] = self.limit, self.value
        return out


@dataclass(frozen=True)
class ServeLimits:
    """Caps on one request (body bytes, decoded pixels and audio, k, text, time), the pools that
    run requests, and the connection timeouts of the server."""

    max_upload_mb: float = 20.0
    max_json_kb: float = 256.0
    max_pixels: int = 40_000_000          # one image (width x height, from its header)
    max_audio_seconds: float = 600.0      # one sound
    request_pixels: int = 64_000_000      # every image of one request together
    request_audio_seconds: float = 600.0  # every sound of one request together
    max_image_side: int = 2048            # query images are decoded at most this large
    max_k: int = 200
    max_text_chars: int = 2_000
    timeout_s: float = 30.0
    workers: int = 8                      # threads for text queries and item look-ups
    media_workers: int = 1                # threads decoding and encoding uploads
    media_queue: int = 16                 # uploads waiting for one; more -> 503 + Retry-After
    header_timeout_s: float = 10.0        # request line + headers must arrive within this
    body_timeout_s: float = 20.0          # the whole body must arrive within this
    keep_alive_s: float = 5.0             # idle keep-alive connections close after this
    max_connections: int = 64             # open connections; more -> 503
    allowed_hosts: tuple[str, ...] = field(default=())  # Host names beyond loopback ("*": any)

    def __post_init__(self) -> None:
        bad = [k for k, v in asdict(self).items() if isinstance(v, (int, float)) and v <= 0]
        if bad:
            raise UnibindError(f"serve limits must be positive: {', '.join(bad)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_json_bytes(self) -> int:
        return int(self.max_json_kb * 1024)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("allowed_hosts")
        return out


def too_large(limits: ServeLimits, json_body: bool = False) -> ServeError:
    """The 413 error for a request body over ``max_upload_mb`` (``max_json_kb`` for JSON)."""
    if json_body:
        return ServeError(f"JSON body larger than max_json_kb={limits.max_json_kb:g} KB",
                          status=413, limit="max_json_kb", value=limits.max_json_kb)
    return ServeError(f"request body larger than max_upload_mb={limits.max_upload_mb:g} MB",
                      status=413, limit="max_upload_mb", value=limits.max_upload_mb)


def upload_fields() -> dict[str, str]:
    """Multipart file field -> declared modality: one field per uploadable modality, plus
    ``file`` (any; told apart by content)."""
    return {**{m: m for m in uploadable()}, "file": "any"}


def sniff(path: str | os.PathLike) -> tuple[str, dict[str, float]] | None:
    """(modality, decode costs) from the file's content alone, or None if no uploadable
    modality recognises it; ``MediaError`` for a header no real file has."""
    for name in uploadable():
        costs = get_modality(name).sniff(Path(path))
        if costs is not None:
            return name, dict(costs)
    return None


class Budget:
    """What one request's uploads may cost in total (``request_*`` limits)."""

    def __init__(self, limits: ServeLimits):
        self.limits, self.spent = limits, dict.fromkeys(COSTS, 0.0)

    def charge(self, name: str, costs: dict[str, float]) -> None:
        """Check one file's costs against the per-file and per-request caps, then add them."""
        for cost, value in costs.items():
            if cost not in COSTS:
                continue
            per_file, per_request, shown = COSTS[cost]
            cap = getattr(self.limits, per_file)
            if value > cap:
                raise ServeError(f"{name}: {shown.format(value)} exceeds {per_file}={cap:g}",
                                 status=413, limit=per_file, value=cap)
            total = getattr(self.limits, per_request)
            if self.spent[cost] + value > total:
                raise ServeError(f"{name}: the request's uploads together exceed "
                                 f"{per_request}={total:g}", status=413, limit=per_request,
                                 value=total)
            self.spent[cost] += value


def check_upload(path: Path, declared: str, budget: Budget, name: str) -> str:
    """The upload's modality (``declared``: a modality name or ``any``), after its header checks
    and the request's budget."""
    try:
        found = sniff(path)
    except MediaError as exc:
        raise ServeError(f"{name}: {exc}") from None
    if found is None:
        kinds = " nor ".join(uploadable())
        raise ServeError(f"{name}: not a file this service can read (neither {kinds})"
                         if len(uploadable()) > 1 else f"{name}: not a readable {kinds} file")
    kind, costs = found
    if declared != "any" and kind != declared:
        raise ServeError(f"{name}: sent as {declared} but its content is {kind}")
    budget.charge(name, costs)
    return kind
