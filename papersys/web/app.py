"""The HTTP API as a FastAPI app: thin GET routes over service.py, JSON errors, the bearer token, the page.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at runtime.
"""

import hmac
import json
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.dependencies.utils import get_flat_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from papersys import __version__, service
from papersys.config import Config
from papersys.errors import ConfigError, PapersysError, SearchError, UsageError
from papersys.report import Report
from papersys.search.query import QueryOptions, Searcher
from papersys.store.ids import InvalidIdError, normalize_id
from papersys.web import schemas
from papersys.web.docs import docs_page

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_K = 100
MAX_QUERY_CHARS = 1_000
# no data in them, so no token needed (the page asks for the token itself)
OPEN_PATHS = frozenset({"/healthz", "/", "/docs", "/favicon.ico"})
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

K = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many papers (1-{MAX_K}).")]
Text = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The query (devdoc/search.md).")]
Mode = Annotated[
    Literal["hybrid", "semantic", "keyword"] | None,
    Query(description="Ranking; default hybrid when both indexes exist."),
]
Categories = Annotated[
    list[Annotated[str, Query(max_length=40)]] | None,
    Query(alias="category", description="Only papers in this category or archive (repeat: any of)."),
]
Since = Annotated[date | None, Query(description="Only papers first submitted on or after (YYYY-MM-DD).")]
Until = Annotated[date | None, Query(description="Only papers first submitted on or before (YYYY-MM-DD).")]
Model = Annotated[str | None, Query(max_length=64, description="Model alias (default: the first enabled).")]


def create_app(config: Config, searcher: Searcher | None = None) -> FastAPI:
    """The API over ``config``'s store; ``searcher`` (kept for the app's life) holds the loaded query model."""
    searcher = searcher or Searcher(config)
    app = FastAPI(
        title="papersys",
        version=__version__,
        summary="Read-only search over a local copy of arXiv (devdoc/api.md).",
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; /docs below is served from here
        redoc_url=None,
        dependencies=[Depends(_unknown_parameters_check())],
    )
    _add_error_handlers(app)
    token = config.api.token.get_secret_value()
    if token:
        app.add_middleware(BearerAuth, token=token)

    @app.get(
        "/api/search",
        summary="Search papers by text (DESIGN §9 result object)",
        responses=schemas.responses(schemas.SearchResult, 400, 401, 404),
    )
    def search(
        *, q: Text, k: K = 10, mode: Mode = None, category: Categories = None, since: Since = None, until: Until = None,
        model: Model = None,
    ) -> Response:  # fmt: skip
        options = QueryOptions(k, tuple(category or ()), since, until, model, mode)
        return _json(service.search(config, q, options, searcher=searcher))

    @app.get(
        "/api/similar/{paper_id:path}",
        summary="Papers nearest to a stored paper (itself excluded)",
        responses=schemas.responses(schemas.SearchResult, 400, 401, 404),
    )
    def similar(
        paper_id: str, *, k: K = 10, category: Categories = None, since: Since = None, until: Until = None,
        model: Model = None,
    ) -> Response:  # fmt: skip
        options = QueryOptions(k, tuple(category or ()), since, until, model)
        return _json(service.similar(config, _checked_id(paper_id), options, searcher=searcher))

    @app.get(
        "/api/papers/{paper_id:path}",
        summary="One paper's metadata and the models with a vector for it",
        responses=schemas.responses(schemas.PaperDetail, 400, 401, 404),
    )
    def paper(paper_id: str) -> Response:
        return _json(service.paper_detail(config, _checked_id(paper_id), searcher=searcher))

    @app.get(
        "/api/status",
        summary="The `papersys status --json` object (devdoc/status.md)",
        responses=schemas.responses(None, 401),
    )
    def status() -> Response:
        return _json(service.status(config))

    @app.get(
        "/healthz",
        summary="Liveness, with each index's size (no token needed)",
        responses={200: {"model": schemas.Health}},
    )
    def healthz() -> Response:
        return _json(service.health(config))

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:  # browsers ask for it on every page, the page's own one included
        return Response(status_code=204)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return Response(docs_page(app.openapi()), media_type="text/html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _json(report: Report) -> Response:
    body = json.dumps(report.to_dict(), default=str, ensure_ascii=False)
    return Response(body, media_type="application/json")


def _checked_id(raw: str) -> str:
    """An arXiv id (versions and the OAI prefix stripped) before it goes anywhere near the store."""
    try:
        return normalize_id(raw)
    except InvalidIdError as exc:
        raise UsageError(str(exc)) from None


def _unknown_parameters_check() -> Callable[[Request], None]:
    """A dependency: a misspelt parameter (``catgory=``) is an error (422), not silently ignored. Each
    route's declared parameters are collected once, on its first request."""
    declared: dict[str, frozenset[str]] = {}

    def check(request: Request) -> None:
        route = request.scope.get("route")
        if not isinstance(route, APIRoute) or not route.include_in_schema:  # the page reads its own URL
            return
        known = declared.get(route.unique_id)
        if known is None:
            known = frozenset(p.alias for p in get_flat_dependant(route.dependant).query_params)
            declared[route.unique_id] = known
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise RequestValidationError(
                [{"type": "extra_forbidden", "loc": ("query", n), "msg": "unknown query parameter"} for n in unknown]
            )

    return check


def error(status: int, message: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is ``{"error": one line, "detail": …}`` with a fitting status, never a traceback."""

    async def validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        first = detail[0] if detail else {"loc": "request", "msg": "invalid"}
        return error(422, f"{first['loc']}: {first['msg']}", detail)

    async def http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail), None)

    async def papersys_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PapersysError)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, UsageError | ConfigError):
            return error(400, message)
        if isinstance(exc, SearchError):  # the paper, its vector or the model's index does not exist
            return error(404, message)
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error(503, message)  # the store cannot answer now (a damaged file, …): logged

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(PapersysError, papersys_error)
    app.add_middleware(CatchAll)  # Starlette's own catch-all answers too, but then re-raises to the server


class CatchAll:
    """An unexpected error: logged once with its traceback, answered 500 with no detail, and the connection
    kept (Starlette's catch-all re-raises to uvicorn, which logs it again and drops the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            if started or scope["type"] != "http":
                raise
            await error(500, "internal error (logged by the server)")(scope, receive, send)


class BearerAuth:
    """Every request but ``OPEN_PATHS`` and the page's static files carries ``Authorization: Bearer <token>``
    (constant-time compare), else 401. Runs before routing: without the token, unknown paths are 401 too."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("authorization", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        response = error(401, "missing or wrong bearer token (Authorization: Bearer <[api] token>)")
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
