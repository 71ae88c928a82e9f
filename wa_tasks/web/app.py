"""HTTP API: health, sessions, send and message status (the seed §8 paths and JSON shapes).

Every ``/api`` route needs the ``X-API-Key`` header when ``WA_API_KEY`` is set; without a key the
server refuses to listen on anything but loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from models.db import session_scope
from wa_tasks import sessions as manage
from wa_tasks.client import Client
from wa_tasks.errors import InvalidRequest, MessageNotFound
from wa_tasks.redis_client import client_for
from wa_tasks.settings import Settings, get_settings


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
