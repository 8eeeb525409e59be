"""The HTTP layer: ``create_app(run)`` -> a FastAPI app over one shared ``Space``.

It only parses requests and calls ``Service`` (in bounded pools, under a deadline); the page at
``/`` is static files from ``serve/static``. OpenAPI docs at ``/docs``. ``serve.guard`` checks
Host, Origin, content type and body size before any route runs.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from unibind.errors import UnibindError
from unibind.modalities import uploadable
from unibind.search.space import Space, parse_modalities
from unibind.serve.guard import Guard
from unibind.serve.limits import ServeError, ServeLimits, upload_fields
from unibind.serve.media import DEFAULT_THUMB, audio_type, echo
from unibind.serve.pools import Deadline, Pool
from unibind.serve.service import Service

STATIC = Path(__file__).parent / "static"
COOKIE = "unibind_token"
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def __getattr__(name: str) -> Any:
    if name == "UPLOAD_FIELDS":  # live: follows the modality registry
        return upload_fields()
    raise AttributeError(name)


def _split(v: Any) -> Any:
    if isinstance(v, str):
        return [m for m in v.split(",") if m.strip()] or None
    return v or None


class SearchOptions(BaseModel):
    """What every search takes: the same options as ``unibind search``."""

    k: int = Field(10, ge=1, description="Number of results (at most max_k).")
    modality: list[str] | None = Field(None, description="Only these target modalities.")
    balance: str | None = Field(None, description="none | balanced | calibrated | centered.")
    via_pairs: int = Field(0, ge=0, le=100, description="Pair-expansion anchors (0 = off).")

    _modality = field_validator("modality", mode="before")(_split)


class SearchRequest(SearchOptions):
    """A search: text and/or (multipart) image / audio files."""

    text: list[str] = Field(default_factory=list, max_length=16,
                            description="Query text(s), summed with any files.")

    @field_validator("text", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        if v is None:
            return []
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list):
            return v
        return [t for t in items if not isinstance(t, str) or t.strip()]


def create_app(run: str | os.PathLike | Space | Service, index: str | os.PathLike | None = None,
               *, limits: ServeLimits | None = None, token: str | None = None) -> FastAPI:
    """The service for ``run`` (a run folder, a loaded ``Space`` or a ``Service``)."""
    owned = not isinstance(run, Service)
    if isinstance(run, Service):
        service = run
    else:
        space = run if isinstance(run, Space) else Space.load(run, index)
        service = Service(space, limits)
    limits = service.limits

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:  # a Service handed in belongs to the caller
            service.close()

    app = FastAPI(title="unibind", version="1", lifespan=lifespan, docs_url=None,
                  description="Search one embedding space of text, images and sound.")
    _mount_docs(app)
    app.state.service = service

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(StarletteHTTPException)  # one error shape for every refusal
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "request"
        return JSONResponse({"error": f"{where}: {first['msg']}"}, status_code=422)

    if token:
        @app.middleware("http")
        async def _auth(request: Request, call_next: Any) -> Response:
            path = request.url.path
            if not path.startswith("/api/") or path == "/api/health":
                return await call_next(request)
            header = request.headers.get("authorization", "")
            given = header[7:] if header.lower().startswith("bearer ") else ""
            cookie = request.cookies.get(COOKIE, "")
            if not (_same(given, token) or _same(cookie, token)):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            response = await call_next(request)
            if given and not _same(cookie, token):  # lets <img>/<audio> tags load media
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response

    async def in_pool(pool: Pool, deadline: Deadline, fn: Any, *args: Any) -> Any:
        try:
            return await pool.run(deadline, fn, *args)
        except ServeError:
            raise
        except FileNotFoundError as exc:  # its text names a server path
            raise ServeError("a file this request needs is missing on the server",
                             status=404) from exc
        except (UnibindError, ValueError, KeyError) as exc:  # bad values
            raise ServeError(str(exc).strip("'\"")[:300]) from exc

    @app.get("/api/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness: ok once the run, index and encoders are loaded."""
        return {"status": "ok", "items": len(service.table.rows)}

    @app.get("/api/info", tags=["service"])
    async def info() -> dict[str, Any]:
        """The run, its encoders, items per modality, headline metrics, limits."""
        return service.info()

    @app.post("/api/search", tags=["search"], openapi_extra=_search_body())
    async def search(request: Request) -> dict[str, Any]:
        """JSON ``{"text", "k", "modality", "balance", "via_pairs"}``, or multipart with
        uploads (a field per uploadable modality, e.g. ``image`` / ``audio``, or ``file``)
        plus the same fields. The response has the shape of ``unibind search --json``.
        Uploads run in their own small pool: when it is full the answer is 503 with
        ``Retry-After``; text queries never wait behind them."""
        deadline = Deadline(limits.timeout_s)
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            req = _validate(SearchRequest, await _json(request))
            _check_request(req, limits)
            return await in_pool(service.pool, deadline, service.search, req.text, [], req.k,
                                 req.modality, req.balance, req.via_pairs, None, deadline)
        try:  # a full upload pool answers 503 before the body is parsed
            service.media.admit()
        except ServeError:
            async for _ in request.stream():  # read (capped by the guard), so the client
                pass                           # that sends it all first still gets the 503
            raise
        req, files, form = await _read_form(request)
        try:
            _check_request(req, limits)
            pool = service.media if files else service.pool
            return await in_pool(pool, deadline, _search_files, service, req, files, deadline)
        finally:  # after a timeout too: a late job then fails on its closed files, unseen
            await form.close()

    @app.get("/api/items/{item_id:path}/media", tags=["items"])
    async def media(item_id: str, size: int = DEFAULT_THUMB) -> Response:
        """The item's own file: images as JPEG thumbnails fitting ``size`` px (0 = the
        original file), sounds as they are, with their content type and HTTP Range."""
        path, preview = service.table.file(item_id)
        if preview == "image" and size != 0:
            data = await in_pool(service.files, Deadline(limits.timeout_s), service.thumbs.get,
                                 item_id, path, size)
            return Response(data, media_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})
        mtype = audio_type(path) if preview == "audio" else None
        return FileResponse(path, media_type=mtype, headers={"Cache-Control": "private"})

    @app.post("/api/items/{item_id:path}/similar", tags=["search"])
    async def similar(item_id: str, request: Request) -> dict[str, Any]:
        """Search by an indexed item (its stored vector is the query; it is left out)."""
        req = _validate(SearchOptions, await _json(request))
        _check_request(req, limits)
        return await in_pool(service.pool, Deadline(limits.timeout_s), service.similar,
                             item_id, req.k, req.modality, req.balance, req.via_pairs)

    @app.get("/api/items/{item_id:path}", tags=["items"])
    async def item(item_id: str) -> dict[str, Any]:
        """One item: id, modality, label, group, split, and its path or text."""
        return service.table.describe(item_id)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, limits=limits)  # added last: runs first
    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from the ``swagger-ui-bundle`` package's files: no CDN, works
    offline. Without that package, ``/docs`` says where the spec is instead of failing silently."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        if swagger_ui_path is None:
            return HTMLResponse("<p>Interactive docs need the <code>swagger-ui-bundle</code> "
                                "package (<code>pip install 'unibind[serve]'</code>); the spec "
                                "is at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json",
                                   title="unibind API", swagger_js_url="/docs-assets/"
                                   "swagger-ui-bundle.js", swagger_css_url="/docs-assets/"
                                   "swagger-ui.css", swagger_favicon_url="/docs-assets/"
                                   "favicon-32x32.png")

    if swagger_ui_path is not None:  # only the files /docs loads, nothing else of the package
        folder = Path(swagger_ui_path)

        @app.get("/docs-assets/{name}", include_in_schema=False)
        async def docs_asset(name: str) -> FileResponse:
            if name not in DOCS_ASSETS or not (folder / name).is_file():
                raise ServeError("Not Found", status=404)
            return FileResponse(folder / name, headers={"Cache-Control": "max-age=86400"})


def _same(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


async def _json(request: Request) -> Any:
    """The request body as JSON (an empty body is ``{}``); every malformed body is a 422 naming
    what is wrong: bad syntax, too deep, a number too long, a lone surrogate."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates fail here
    except RecursionError:
        raise ServeError("body is not usable JSON: nested too deeply") from None
    except UnicodeError:
        raise ServeError("body is not usable JSON: invalid UTF-8 or a lone surrogate "
                         "(\\ud800-\\udfff)") from None
    except json.JSONDecodeError as exc:
        raise ServeError(f"body is not JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None
    except ValueError:  # e.g. an integer of thousands of digits
        raise ServeError("body is not usable JSON: a number is too long") from None
    return data


def _validate(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ServeError("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])[:80] or "body"
        raise ServeError(f"{where}: {first['msg'][:200]}") from None


def _check_request(req: Any, limits: ServeLimits) -> None:
    if req.k > limits.max_k:
        raise ServeError(f"k={req.k} exceeds max_k={limits.max_k}", limit="max_k",
                         value=limits.max_k)
    for t in getattr(req, "text", []):
        if len(t) > limits.max_text_chars:
            raise ServeError(f"text of {len(t)} characters exceeds max_text_chars="
                             f"{limits.max_text_chars}", status=413, limit="max_text_chars",
                             value=limits.max_text_chars)
    try:
        req.modality = parse_modalities(req.modality)
    except ValueError as exc:
        raise ServeError(str(exc)[:300]) from None


async def _read_form(request: Request) -> tuple[SearchRequest, list, Any]:
    """Multipart -> (request, [(declared modality, file object, shown name, field)], form);
    the files stay in the form's spooled buffers until a worker saves them."""
    try:
        form = await request.form(max_files=8, max_fields=32)
    except AssertionError:  # starlette's own check of a malformed part
        raise ServeError("malformed multipart body", status=400) from None
    fields_of = upload_fields()
    try:
        files, fields = [], {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key not in fields_of:
                    raise ServeError(f"unknown file field {echo(key)}; use "
                                     f"{', '.join(fields_of)}")
                shown = Path(value.filename or key).name[:120] or key
                files.append((fields_of[key], value.file, shown, key))
            elif key in ("text", "modality"):
                fields.setdefault(key, []).append(value)
            else:
                fields[key] = value
        if "modality" in fields:
            fields["modality"] = ",".join(fields["modality"])
        return _validate(SearchRequest, fields), files, form
    except BaseException:
        await form.close()
        raise


def _search_files(service: Service, req: SearchRequest, files: list,
                  deadline: Deadline) -> dict[str, Any]:
    """In a worker: save the uploads under a fresh temporary folder (names are ours), search,
    delete the folder whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="unibind-serve-"))
    try:
        uploads = []
        for n, (declared, fh, shown, key) in enumerate(files):
            target = tmp / f"upload-{n}"
            fh.seek(0)
            with open(target, "wb") as out:
                shutil.copyfileobj(fh, out, 1 << 20)
            if target.stat().st_size == 0:
                raise ServeError(f"{key}: empty file")
            uploads.append((declared, target, shown))
        return service.search(req.text, uploads, req.k, req.modality, req.balance,
                              req.via_pairs, tmp, deadline)
    finally:
        _remove(tmp)


def _remove(tmp: Path | None) -> None:
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def _search_body() -> dict[str, Any]:
    schema = SearchRequest.model_json_schema()
    files = {"type": "object", "properties": {
        **schema["properties"],
        **{m: {"type": "string", "format": "binary"} for m in uploadable()},
        "file": {"type": "string", "format": "binary",
                 "description": "Any uploadable file (told apart by content)."}}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema}, "multipart/form-data": {"schema": files}}}}
