"""Messages customers send to the sessions: stored once, checked for an opt-out word, and handed to
the hook billing code registers.

The hook (``WA_INCOMING_HOOK``) is either ``celery:<task name>[@<queue>]`` — a task of the billing
codebase, published on the same broker to ``<queue>`` (default ``celery``) with kwargs
``message_id, session_id, sender, text, received_at`` — or
``python:<module>:<function>``, imported in the session host and called with the same keyword
arguments. A hook that fails is logged with the message id; the message stays stored.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import IncomingMessage
from models.db import session_scope
from wa_tasks.core.phone import mask
from wa_tasks.pipeline import optout
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


def receive(
    settings: Settings, session_id: str, sender: str, text: str, wa_message_id: str, at: dt.datetime
) -> int | None:
    """Store one incoming message (once per WhatsApp id), act on an opt-out word, call the hook.
    Returns the stored id, or None for a message already stored."""
    try:
        with session_scope(settings.database) as db:
            row = IncomingMessage(
                wa_message_id=wa_message_id, session_id=session_id, sender=sender, text=text, received_at=at
            )
            db.add(row)
            db.flush()
            stored_id = row.id
    except IntegrityError:
        return None  # redelivered event: already stored and handled
    log.info("incoming message %s from %s", stored_id, mask(sender), extra={"session_id": session_id})
    optout.handle_incoming(settings, session_id, sender, text, wa_message_id)
    call_hook(
        settings,
        {
            "message_id": stored_id,
            "session_id": session_id,
            "sender": sender,
            "text": text,
            "received_at": at.isoformat(),
        },
    )
    return stored_id


def call_hook(settings: Settings, payload: dict[str, Any]) -> None:
    hook = settings.incoming_hook
    if not hook:
        return
    kind, _, target = hook.partition(":")
    try:
        if kind == "celery":
            from wa_tasks.infra.celery_app import app_for

            task, _, queue = target.partition("@")
            app_for(settings).send_task(task, kwargs=payload, queue=queue or "celery")
        elif kind == "python":
            module, _, name = target.rpartition(":")
            getattr(importlib.import_module(module), name)(**payload)
        else:
            raise ValueError(f"WA_INCOMING_HOOK must start with celery: or python:, got {hook!r}")
    except Exception:
        log.exception("incoming hook %s failed for incoming message %s", hook, payload["message_id"])


def recent(settings: Settings, limit: int = 50, sender: str | None = None) -> list[dict[str, Any]]:
    """The latest incoming messages (newest first)."""
    with session_scope(settings.database) as db:
        query = select(IncomingMessage).order_by(IncomingMessage.received_at.desc()).limit(limit)
        if sender:
            query = query.where(IncomingMessage.sender == sender)
        return [
            {
                "id": m.id,
                "sessionId": m.session_id,
                "sender": m.sender,
                "text": m.text,
                "receivedAt": m.received_at.isoformat(),
            }
            for m in db.scalars(query)
        ]
