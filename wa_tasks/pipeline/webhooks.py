"""Status callbacks, the writing side: every status change of a message records its event in the
outbox (``whatsapp_webhook_events``), in the transaction of the change itself.

``record`` is called by the functions that change a status (``wa_tasks.pipeline.lifecycle`` and
the few bulk updates beside it) with the ids of the rows they moved; it reads what the event
carries from those rows and inserts one row per place the event goes: ``WA_STATUS_WEBHOOK_URL``,
the message's own ``callback_url``, ``WA_STATUS_HOOK``. A crash before the commit loses the change
and its events together; after it, both are stored, and the deliverer
(``wa_tasks.pipeline.webhook_delivery``) sends them, in order per message, at least once. Nothing
here talks to a receiver: the send path only writes rows.

The event (the JSON body of the POST, and the ``event`` argument of the Celery hook)::

    {"id": "evt_…", "type": "message.status", "messageId": "msg_…", "status": "delivered",
     "timestamp": "2026-12-03T09:00:01.250000Z", "idempotencyKey": …, "noticeKey": …, "ref": …,
     "sessionId": "wa-1", "error": null}

``status`` is the message's new status, or ``ambiguous`` for a send interrupted by a crash (the
message is ``failed`` with ``ambiguous_send``, never resent, and a later receipt may still make it
``delivered``). Data flows one way: this module imports no status logic, the lifecycle imports it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, insert, select, update

from models import DEAD_EVENT, PENDING_EVENT, Message, MessageStatus, WebhookEvent, utcnow
from models.db import Db, session_scope
from wa_tasks.core.timefmt import iso, iso_or_none
from wa_tasks.errors import UnknownWebhookEvent
from wa_tasks.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: The event status of an interrupted send (see the module docstring).
AMBIGUOUS = "ambiguous"
#: Statuses that make an event (``queued``, ``routed``, ``sending``, ``scheduled`` are steps of the
#: way, not outcomes billing acts on).
EVENT_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.FAILED,
    MessageStatus.CANCELLED,
    MessageStatus.EXPIRED,
    AMBIGUOUS,
)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def installation_targets(settings: Settings) -> list[str]:
    """Where every event goes whatever the message: ``WA_STATUS_WEBHOOK_URL``, ``WA_STATUS_HOOK``."""
    return [t for t in (settings.status_webhook_url, settings.status_hook) if t]


def record(db: Db, message_ids: Collection[str], status: str, *, at: dt.datetime | None = None) -> int:
    """Store the event of ``status`` for each of ``message_ids`` (rows just moved to it in ``db``'s
    transaction), once per target; returns how many event rows were written."""
    if not message_ids:
        return 0
    settings = get_settings()
    targets = installation_targets(settings)
    query = select(
        Message.id,
        Message.idempotency_key,
        Message.notice_key,
        Message.ref,
        Message.session_id,
        Message.error_message,
        Message.callback_url,
    ).where(Message.id.in_(list(message_ids)))
    if not targets:
        query = query.where(Message.callback_url.is_not(None))
    rows = db.execute(query).all()
    if not rows:
        return 0
    now = utcnow()
    at = at or now
    give_up = now + dt.timedelta(hours=settings.webhook_retry_hours)
    events: list[dict[str, Any]] = []
    for row in rows:
        failure = status in (MessageStatus.FAILED, AMBIGUOUS)
        for target in [*targets, *([row.callback_url] if row.callback_url else [])]:
            event_id = new_event_id()
            body = {
                "id": event_id,
                "type": "message.status",
                "messageId": row.id,
                "status": str(status),
                "timestamp": iso(at),
                "idempotencyKey": row.idempotency_key,
                "noticeKey": row.notice_key,
                "ref": row.ref,
                "sessionId": row.session_id,
                "error": row.error_message if failure or status == MessageStatus.CANCELLED else None,
            }
            events.append(
                {
                    "event_id": event_id,
                    "message_id": row.id,
                    "status": str(status),
                    "target": target,
                    "payload": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
                    "state": PENDING_EVENT,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "give_up_at": give_up,
                    "created_at": now,
                }
            )
    if events:
        db.execute(insert(WebhookEvent), events)
    return len(events)


def failed_status(error: str, ambiguous_prefix: str) -> str:
    """The event status of a ``failed`` write: ``ambiguous`` when its error says the send was interrupted."""
    return AMBIGUOUS if error.startswith(ambiguous_prefix) else MessageStatus.FAILED


# The operator's side: dead letters and their retry ---------------------------------------------


def event_view(event: WebhookEvent) -> dict[str, Any]:
    """One event as the API, the command line and the pages show it (the target's query string hidden)."""
    return {
        "id": event.event_id,
        "messageId": event.message_id,
        "status": event.status,
        "target": mask_target(event.target),
        "state": event.state,
        "attempts": event.attempts,
        "lastError": event.last_error,
        "createdAt": iso_or_none(event.created_at),
        "nextAttemptAt": iso_or_none(event.next_attempt_at) if event.state == PENDING_EVENT else None,
        "deliveredAt": iso_or_none(event.delivered_at),
    }


def mask_target(target: str) -> str:
    """A target for display and logs: a URL without its query string or credentials (they may hold a key)."""
    if target.startswith("celery:"):
        return target
    head, _, _query = target.partition("?")
    scheme, sep, rest = head.partition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}" + ("?***" if _query else "")


def list_events(settings: Settings, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The latest events (newest first), only those in ``state`` (pending, delivered, dead) when given."""
    with session_scope(settings.database) as db:
        query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
        if state is not None:
            query = query.where(WebhookEvent.state == state)
        return [event_view(e) for e in db.scalars(query)]


def counts(settings: Settings) -> dict[str, int]:
    """How many events are in each state."""
    with session_scope(settings.database) as db:
        rows = db.execute(select(WebhookEvent.state, func.count()).group_by(WebhookEvent.state)).all()
    return {str(state): int(n) for state, n in rows}


def retry(settings: Settings, event_id: str) -> dict[str, Any]:
    """A dead event back to ``pending``, due now, with a new retry window; returns it. An event not
    dead is left as it is; an unknown id raises :class:`UnknownWebhookEvent`."""
    now = utcnow()
    with session_scope(settings.database) as db:
        db.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id == event_id, WebhookEvent.state == DEAD_EVENT)
            .values(
                state=PENDING_EVENT,
                next_attempt_at=now,
                give_up_at=now + dt.timedelta(hours=settings.webhook_retry_hours),
            )
        )
        event = db.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))
        if event is None:
            raise UnknownWebhookEvent(f"no status event with id {event_id!r}")
        log.info("status event %s retried by the operator", event_id)
        return event_view(event)
