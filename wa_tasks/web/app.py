"""The ``web`` process as an ASGI app: the API (``api``), the pages (``pages``), the health check,
Prometheus ``/metrics`` and the local static assets (no CDN: operators' servers are often offline).

Run with ``wa-tasks web``; without ``WA_API_KEY`` the server refuses to listen beyond loopback.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware

from models.db import session_scope
from wa_tasks.errors import InvalidRequest, MessageNotFound
from wa_tasks.redis_client import client_for
from wa_tasks.settings import get_settings
from wa_tasks.web import api, pages
from wa_tasks.web.auth import LoginRequired, require_key, session_secret
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


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="wa-tasks", version="0.1.0", description="WhatsApp notifications for ISP billing")
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="wa_tasks_session",
        same_site="strict",
        https_only=False,
    )

    @app.exception_handler(InvalidRequest)
    async def _invalid(_request: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": exc.code, "detail": str(exc)})

    @app.exception_handler(MessageNotFound)
    async def _not_found(_request: Request, exc: MessageNotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": exc.code, "detail": str(exc)})

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(exc.location, status_code=303)

    app.get("/health", tags=["operations"])(health)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WaCollector(get_settings))

    @app.get("/metrics", dependencies=[Depends(require_key)], tags=["operations"])
    def prometheus_metrics() -> Response:
        """Prometheus exposition: messages by status, queue depths, session states, send latency."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    return app


app = create_app()
