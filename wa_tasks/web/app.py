"""HTTP API: health, sessions, send and message status (the seed §8 paths and JSON shapes), daily
figures (``/api/whatsapp/metrics``) and the Prometheus ``/metrics``.

Every ``/api`` route needs the ``X-API-Key`` header when ``WA_API_KEY`` is set; without a key the
server refuses to listen on anything but loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from models.db import session_scope
from wa_tasks import sessions as manage
from wa_tasks.client import Client
from wa_tasks.errors import InvalidRequest, MessageNotFound
from wa_tasks.redis_client import client_for
from wa_tasks.settings import Settings, get_settings
from wa_tasks.web.prometheus import WaCollector


def check_bind_allowed(settings: Settings) -> None:
    """Refuse to serve an unauthenticated API beyond this machine."""
    if settings.api_key:
        return
    host = settings.web_host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing to listen on {host} without an API key: set WA_API_KEY, or WA_WEB_HOST=127.0.0.1")


def require_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
    expected = get_settings().api_key
    if expected is None:
        return
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(status_code=401, detail="missing or wrong X-API-Key header")


app = FastAPI(title="wa-tasks", version="0.1.0", description="WhatsApp notifications for ISP billing")
api = [Depends(require_key)]


@app.exception_handler(InvalidRequest)
async def _invalid(_request: Any, exc: InvalidRequest) -> JSONResponse:
    return JSONResponse(status_code=422, content={"error": exc.code, "detail": str(exc)})


@app.exception_handler(MessageNotFound)
async def _not_found(_request: Any, exc: MessageNotFound) -> JSONResponse:
    return JSONResponse(status_code=404, content={"error": exc.code, "detail": str(exc)})


@app.get("/health")
def health() -> dict[str, Any]:
    """Liveness and the reachability of the database and Redis (no key needed)."""
    settings = get_settings()
    checks: dict[str, bool] = {}
    try:
        from sqlalchemy import text

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


def require_scrape_key(
    x_api_key: Annotated[str | None, Header()] = None, authorization: Annotated[str | None, Header()] = None
) -> None:
    """``/metrics`` takes the API key as ``X-API-Key`` or as a bearer token, which Prometheus'
    scrape configuration can send (``authorization: {credentials: ...}``)."""
    bearer = authorization.removeprefix("Bearer ").strip() if authorization else None
    require_key(x_api_key if x_api_key is not None else bearer)


_registry = CollectorRegistry(auto_describe=False)
_registry.register(WaCollector(get_settings))


@app.get("/metrics", dependencies=[Depends(require_scrape_key)])
def prometheus_metrics() -> Response:
    """Prometheus exposition: messages by status, queue depths, session states, send latency."""
    return Response(generate_latest(_registry), media_type=CONTENT_TYPE_LATEST)


@app.get("/api/whatsapp/metrics", dependencies=api)
def daily_metrics(day: str | None = None, session: str | None = None) -> dict[str, Any]:
    """One local day's figures (seed §14; ``day`` YYYY-MM-DD, default today WIB)."""
    return Client(get_settings()).stats(day, session)


@app.get("/api/whatsapp/sessions", dependencies=api)
def list_sessions() -> dict[str, Any]:
    return {"sessions": manage.listing(get_settings())}


class SendBody(BaseModel):
    to: str = Field(description="Phone number or WhatsApp JID")
    text: str | None = None
    template: str | None = None
    data: dict[str, Any] | None = None
    priority: str | int = "normal"
    idempotencyKey: str | None = Field(default=None, max_length=200)
    sessionId: str | None = None


@app.post("/api/whatsapp/send", dependencies=api, status_code=202)
def send(body: SendBody) -> dict[str, Any]:
    message_id = Client(get_settings()).send(
        body.to,
        text=body.text,
        template=body.template,
        data=body.data,
        priority=body.priority,
        idempotency_key=body.idempotencyKey,
        session=body.sessionId,
    )
    return {"id": message_id, "status": "queued"}


@app.get("/api/whatsapp/message/{message_id}/status", dependencies=api)
def message_status(message_id: str) -> dict[str, Any]:
    return Client(get_settings()).status(message_id)
