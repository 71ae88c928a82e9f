"""The HTTP API under ``/api/whatsapp`` (seed §8 paths and JSON shapes, plus what operators need).

Every route needs the API key (see ``auth``). Bad input is a 422 that names the field and says why;
an unknown id is a 404; neither is ever a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from wa_tasks import sessions as manage
from wa_tasks.client import Client
from wa_tasks.settings import get_settings
from wa_tasks.web.auth import require_key

router = APIRouter(prefix="/api/whatsapp", dependencies=[Depends(require_key)], tags=["whatsapp"])


def client() -> Client:
    return Client(get_settings())


@router.get("/metrics")
def daily_metrics(day: str | None = None, session: str | None = None) -> dict[str, Any]:
    """One local day's figures (seed §14; ``day`` YYYY-MM-DD, default today WIB)."""
    return client().stats(day, session)


@router.get("/sessions")
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


@router.post("/send", status_code=202)
def send(body: SendBody) -> dict[str, Any]:
    message_id = client().send(
        body.to,
        text=body.text,
        template=body.template,
        data=body.data,
        priority=body.priority,
        idempotency_key=body.idempotencyKey,
        session=body.sessionId,
    )
    return {"id": message_id, "status": "queued"}


@router.get("/message/{message_id}/status")
def message_status(message_id: str) -> dict[str, Any]:
    return client().status(message_id)
