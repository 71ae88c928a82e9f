"""Read-side views of the queue for operators, shared by the HTTP API and the management pages:
messages with filters (newest first, paginated by a cursor), queue depths per session and
priority step, and bulk jobs with their progress.

Nothing here writes. Message text is never included: lists show who, when and how it went.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models import Message, MessageStatus, QueueJob, Template, WhatsAppSession
from models.db import session_scope
from wa_tasks.core import redis_keys
from wa_tasks.core.phone import normalize
from wa_tasks.core.timefmt import iso_or_none
from wa_tasks.errors import InvalidPhoneNumber, InvalidRequest
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import bulk, live_state
from wa_tasks.pipeline.lifecycle import ambiguity
from wa_tasks.settings import Settings

#: The most rows one page of messages or jobs may ask for.
MAX_LIMIT = 500


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def message_row(message: Message, template: str | None, window_seconds: float | None = None) -> dict[str, Any]:
    """One message as lists show it (no text); ``ambiguousSend``: see :func:`lifecycle.ambiguity`
    (``window_seconds``: ``WA_AMBIGUOUS_RECEIPT_WINDOW_SECONDS``)."""
    return {
        "id": message.id,
        "to": message.to_number,
        "status": message.status,
        "priority": message.priority,
        "sessionId": message.session_id,
        "template": template,
        "error": message.error_message,
        "ambiguousSend": ambiguity(message, window_seconds),
        "attempts": message.attempts,
        "createdAt": iso_or_none(message.created_at),
        "sentAt": iso_or_none(message.sent_at),
        "deliveredAt": iso_or_none(message.delivered_at),
        "readAt": iso_or_none(message.read_at),
        "bulkJobId": message.bulk_job_id,
        "sendAt": iso_or_none(message.send_at),
        "expiresAt": iso_or_none(message.expires_at),
        "noticeKey": message.notice_key,
        "ref": message.ref,
        "category": message.category,
    }


def list_messages(
    settings: Settings,
    *,
    status: str | None = None,
    session: str | None = None,
    to: str | None = None,
    job: str | None = None,
    ref: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[dict[str, Any]]:
    """Messages newest first, each as :func:`message_row`.

    Filters combine: ``status`` (one of the message statuses), ``session`` (routed to it), ``to``
    (a phone number in any form the client accepts, matched exactly once normalised; otherwise the
    stored recipient as given, e.g. a refused request's raw input), ``job`` (a bulk job id), ``ref``
    (what the messages are about, e.g. an invoice number).
    ``before``: the id of the last message of the previous page; the page continues after it. An
    invalid filter raises :class:`InvalidRequest`.
    """
    limit = _check_limit(limit)
    where: list[Any] = []
    if status is not None:
        if status not in {s.value for s in MessageStatus}:
            raise InvalidRequest(f"status must be one of {', '.join(s.value for s in MessageStatus)}, got {status!r}")
        where.append(Message.status == status)
    if session is not None:
        where.append(Message.session_id == session)
    if to is not None:
        where.append(Message.to_number == _stored_number(settings, to))
    if job is not None:
        where.append(Message.bulk_job_id == job)
    if ref is not None:
        where.append(Message.ref == ref)
    with session_scope(settings.database) as db:
        if before is not None:
            where.append(_older_than(db, before))
        query = (
            select(Message, Template.name)
            .outerjoin(Template, Template.id == Message.template_id)
            .where(*where)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        window = settings.ambiguous_receipt_window_seconds
        return [message_row(message, name, window) for message, name in db.execute(query).all()]


def _stored_number(settings: Settings, to: str) -> str:
    try:
        return normalize(to, settings.default_region).number
    except InvalidPhoneNumber:
        return to


def _older_than(db: Session, message_id: str) -> Any:
    cursor = db.execute(select(Message.created_at, Message.id).where(Message.id == message_id)).first()
    if cursor is None:
        raise InvalidRequest(f"before must be the id of a listed message; there is no message {message_id!r}")
    created_at, cursor_id = cursor
    # Ties on created_at (a bulk job's rows share one) are broken by id, the secondary sort key.
    return or_(Message.created_at < created_at, and_(Message.created_at == created_at, Message.id < cursor_id))


def queue_depths(settings: Settings) -> dict[str, dict[int, int]]:
    """Every configured session → Redis priority step 0..9 → messages waiting on its broker queue."""
    with session_scope(settings.database) as db:
        session_ids = list(db.scalars(select(WhatsAppSession.session_id).order_by(WhatsAppSession.session_id)))
    lengths = live_state.step_lengths(client_for(settings.redis), [redis_keys.session_queue(s) for s in session_ids])
    return {sid: dict(enumerate(lengths[redis_keys.session_queue(sid)])) for sid in session_ids}


def list_jobs(settings: Settings, *, limit: int = 20) -> list[dict[str, Any]]:
    """Bulk jobs newest first: ``id, template, status, total, createdAt`` and the counts of
    :func:`wa_tasks.pipeline.bulk.progress` (queued, sent, delivered, read, failed, cancelled, byStatus)."""
    limit = _check_limit(limit)
    with session_scope(settings.database) as db:
        jobs = list(db.scalars(select(QueueJob).order_by(QueueJob.created_at.desc(), QueueJob.id.desc()).limit(limit)))
        counts: dict[str, dict[str, int]] = {job.job_id: {} for job in jobs}
        if jobs:
            rows = db.execute(
                select(Message.bulk_job_id, Message.status, func.count())
                .where(Message.bulk_job_id.in_(list(counts)))
                .group_by(Message.bulk_job_id, Message.status)
            ).all()
            for job_id, status, count in rows:
                if job_id is not None:  # excluded by the query; for the type checker
                    counts[job_id][status] = int(count)
    return [
        {
            **bulk.summary(job, counts[job.job_id]),
            "template": (job.job_data or {}).get("template"),
            "createdAt": iso_or_none(job.created_at),
        }
        for job in jobs
    ]
