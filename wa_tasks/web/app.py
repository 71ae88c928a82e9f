"""The ``web`` process as an ASGI app: the API (``api``), the pages (``pages``), the health check,
Prometheus ``/metrics`` and the local static assets (no CDN: operators' servers are often offline).

Run with ``wa-tasks web``; without ``WA_API_KEY`` the server refuses to listen beyond loopback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import fastapi_offline
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from models.db import session_scope
from wa_tasks.errors import CommandFailed, Conflict, HostUnavailable, InvalidRequest, NotFound, WaTasksError
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import get_settings
from wa_tasks.web import access_log, api, pages
from wa_tasks.web.api import compat
from wa_tasks.web.auth import LoginRequired, require_key, require_login, session_secret
from wa_tasks.web.limits import MAX_BODY_BYTES, BodyLimit
from wa_tasks.web.prometheus import WaCollector


def health() -> dict[str, Any]:
    """Liveness and the reachability of the database and Redis (no key needed)."""
    settings = get_settings()
    checks: dict[str, bool] = {}
    try:
        with session_scope(settings.database) as db:
            db.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        checks["redis"] = bool(client_for(settings.redis).ping())
    except Exception:
        checks["redis"] = False
    return {"status": "ok" if all(checks.values()) else "degraded", **checks}


log = logging.getLogger(__name__)

#: Where the Swagger UI and ReDoc files are served from: shipped by the fastapi-offline package,
#: because FastAPI's own /docs loads them from a CDN that operators' offline servers cannot reach.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def error_status(exc: WaTasksError) -> int:
    """The HTTP status of an error raised on purpose by wa-tasks."""
    if isinstance(exc, HostUnavailable):
        return 503
    if isinstance(exc, CommandFailed | Conflict):
        return 409
    # Before NotFound: an unknown session or template named in a request is invalid input.
    if isinstance(exc, InvalidRequest):
        return 422
    if isinstance(exc, NotFound):
        return 404
    return 500


def readable(errors: Sequence[Any]) -> str:
    """Pydantic's validation errors as one line: ``body.to: Field required; query.limit: …``."""
    parts = []
    for error in errors:
        loc = ".".join(str(p) for p in error.get("loc", ()))
        if error.get("type") == "json_invalid":
            why = (error.get("ctx") or {}).get("error") or "not valid JSON"
            parts.append(f"body: malformed JSON ({why}, at character {error['loc'][-1]})")
        else:
            parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def error_answer(
    request: Request, status_code: int, content: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer: ``{"error": code, "detail": text}``, or on the drop-in endpoints the shape
    the imitated gateways answer with, ``{"status": false, "reason": text, "error": code}``."""
    if request.url.path.startswith(compat.PREFIX + "/"):
        content = {"status": False, "reason": content["detail"], "error": content["error"]}
    return JSONResponse(status_code=status_code, content=content, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error answer is ``{"error": code, "detail": text}`` (validation errors add ``errors``);
    on the drop-in endpoints ``{"status": false, "reason": text, "error": code}``."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg", "ctx")} for e in exc.errors()]
        return error_answer(
            request,
            422,
            {"error": "validation_error", "detail": readable(errors), "errors": jsonable_encoder(errors)},
        )

    @app.exception_handler(WaTasksError)
    async def _wa(request: Request, exc: WaTasksError) -> JSONResponse:
        return error_answer(request, error_status(exc), {"error": exc.code, "detail": str(exc)})

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    @app.exception_handler(kombu.exceptions.OperationalError)
    async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis unreachable: %s", exc)
        return error_answer(
            request,
            503,
            {"error": "redis_unavailable", "detail": "Redis (the broker) is not reachable; try again shortly"},
        )

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    @app.exception_handler(sqlalchemy.exc.InterfaceError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database error: %s", exc)
        return error_answer(
            request,
            503,
            {
                "error": "database_unavailable",
                "detail": f"the database is not reachable or refused the query ({_first_line(exc)}); try again shortly",
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
            # FastAPI's answer to a body json.loads could not even read: malformed JSON too.
            return error_answer(
                request,
                422,
                {
                    "error": "validation_error",
                    "detail": "body: malformed JSON (not UTF-8 text, nested too deeply, or a number too long)",
                },
            )
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_") if exc.status_code in _PHRASES else "error"
        return error_answer(request, exc.status_code, {"error": code, "detail": exc.detail}, exc.headers)


def _first_line(exc: Exception) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]


_PHRASES = {s.value for s in HTTPStatus}
#: FastAPI's detail when it cannot decode a request body at all.
UNPARSABLE_BODY = "There was an error parsing the body"


def install_docs(app: FastAPI) -> None:
    """``/openapi.json`` (needs the key), ``/docs`` and ``/redoc`` (need a login) with local assets."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_key)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_login)])
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="wa-tasks API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(require_login)])
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="wa-tasks API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")


def create_app() -> FastAPI:
    settings = get_settings()
    # Before the first request line is logged: drop-in callers put their key in the query string.
    access_log.install()
    app = FastAPI(
        title="wa-tasks",
        version="0.1.0",
        description="WhatsApp notifications for ISP billing. Every route but /health needs the API key "
        "(X-API-Key header, or a bearer token).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_docs(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="wa_tasks_session",
        same_site="strict",
        https_only=False,
    )
    # Outside every other layer (added last): nothing reads more of a body than the limit
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    install_error_handlers(app)

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(exc.location, status_code=303)

    app.get("/health", tags=["operations"])(health)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WaCollector(get_settings))

    @app.get(
        "/metrics",
        dependencies=[Depends(require_key)],
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    )
    def prometheus_metrics() -> Response:
        """Prometheus exposition: messages by status, queue depths, session states, send latency."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api.router)
    app.include_router(api.compat_router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.common.HERE / "static"), name="static")
    return app


app = create_app()
