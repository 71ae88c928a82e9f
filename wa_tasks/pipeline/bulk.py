"""Bulk sends: one job, many recipients, with progress and cancel.

``create`` validates every recipient and renders every message before anything is stored, then
writes the job row and all message rows in one transaction (batched inserts), and publishes one
``wa.dispatch_batch`` task per batch of message ids: enqueuing 100,000 recipients costs a few
hundred round trips, not 100,000. Sending is still one message at a time per session, at its pace:
a batch is a unit of dispatch, never of sending at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError

from models import JobStatus, Message, MessageStatus, QueueJob, Template, bulk_insert, encryption, utcnow
from models.db import session_scope
from wa_tasks.core import priorities, rendering, task_names
from wa_tasks.core.phone import normalize
from wa_tasks.errors import InvalidMessage, InvalidRequest, UnknownJob, UnknownTemplate
from wa_tasks.pipeline import lifecycle, optout, schedule, webhooks
from wa_tasks.pipeline.request import refuse_nul
from wa_tasks.settings import Settings

#: Message ids per ``wa.dispatch_batch`` task: larger batches cost fewer round trips and do not
#: change the send rate, which pacing sets.
BATCH_SIZE = 500
#: A bulk job's idempotency key: its messages store ``key:index`` in a 200-character column.
MAX_KEY_LENGTH = 190
#: How many invalid recipients an error message lists.
ERRORS_SHOWN = 5


@dataclass(frozen=True)
class _Row:
    to_number: str
    content: str
    data: dict[str, Any] | None


def create(
    settings: Settings,
    app: Celery,
    recipients: Sequence[Mapping[str, Any]],
    *,
    template: str | None = None,
    text: str | None = None,
    template_data: Mapping[str, Any] | None = None,
    priority: str | int = "high",
    idempotency_key: str | None = None,
    send_at: object = None,
    expires_at: object = None,
) -> str:
    """Queue one message per recipient; returns the job id. Raises InvalidRequest (listing the
    first invalid recipients) and queues nothing if any recipient is invalid. ``send_at``: every
    message is stored ``scheduled`` and released when due (``wa_tasks.pipeline.schedule``);
    ``expires_at``: not sent by then, expired."""
    step = priorities.resolve(priority)
    timing = schedule.check(send_at=send_at, expires_at=expires_at, grace_seconds=settings.schedule_grace_seconds)
    waiting = MessageStatus.SCHEDULED if timing.scheduled else MessageStatus.QUEUED
    if not isinstance(recipients, Sequence) or isinstance(recipients, (str, bytes)) or not recipients:
        raise InvalidMessage("recipients must be a non-empty list of {'whatsapp': number, 'data': {...}}")
    if (text is None) == (template is None):
        raise InvalidMessage("give exactly one of text= or template=")
    if template_data is not None and not isinstance(template_data, Mapping):
        raise InvalidMessage("template_data must be a mapping")
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str)
        or not idempotency_key.strip()
        or len(idempotency_key) > MAX_KEY_LENGTH
        or "\x00" in idempotency_key
    ):
        # Each message stores ``key:index`` in a 200-character column.
        raise InvalidMessage(f"idempotency_key must be a non-empty string of at most {MAX_KEY_LENGTH} characters")
    for value, what in ((text, "text"), (template, "template"), (template_data, "template_data")):
        refuse_nul(value, what)
    with session_scope(settings.database) as db:
        row = db.scalar(select(Template).where(Template.name == template)) if template else None
    if template is not None and (row is None or not row.is_active):
        raise UnknownTemplate(f"unknown or inactive template {template!r}")
    if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > rendering.MAX_LENGTH):
        raise InvalidMessage(f"text must be non-empty and at most {rendering.MAX_LENGTH} characters")

    rows: list[_Row] = []
    problems: list[InvalidRequest] = []
    where: list[int] = []
    for index, recipient in enumerate(recipients):
        try:
            rows.append(_prepare(settings, recipient, row, text, template_data))
        except InvalidRequest as exc:
            problems.append(exc)
            where.append(index)
    if problems:
        more = f" (and {len(problems) - ERRORS_SHOWN} more)" if len(problems) > ERRORS_SHOWN else ""
        head = f"{len(problems)} of {len(recipients)} recipients are invalid, nothing was queued: "
        shown = list(zip(where, problems, strict=True))[:ERRORS_SHOWN]
        raise InvalidMessage(
            head + "; ".join(f"#{i}: {exc}" for i, exc in shown) + more,
            loggable=head + "; ".join(f"#{i}: {exc.loggable}" for i, exc in shown) + more,
        )

    job_id = f"job_{uuid.uuid4().hex}"
    ids = [f"msg_{uuid.uuid4().hex}" for _ in rows]
    now = utcnow()
    opted_out: set[str] = set()
    if row is not None and row.category == optout.PROMOTION:
        # Customers who replied STOP get no promotions: their rows are stored as failed, not sent.
        with session_scope(settings.database) as db:
            opted_out = optout.opted_out_among(db, (r.to_number for r in rows))
    message_table = cast(Table, Message.__table__)
    try:
        with session_scope(settings.database) as db, encryption.same_token_for_same_text():
            db.add(
                QueueJob(
                    job_id=job_id,
                    queue_name="bulk",
                    job_data={"template": template, "idempotency_key": idempotency_key},
                    priority=step,
                    max_attempts=settings.max_attempts,
                    status=JobStatus.RUNNING,
                    total=len(rows),
                    started_at=now,
                )
            )
            db.flush()
            # PostgreSQL COPY (Core's executemany elsewhere), not the ORM's bulk path: the ORM's
            # per-row bookkeeping and the INSERTs' parsing would be half of send_bulk's time.
            bulk_insert.insert_many(
                db,
                message_table,
                [
                    {
                        "id": ids[i],
                        "to_number": r.to_number,
                        "content": r.content,
                        "data": r.data,
                        "template_id": row.id if row else None,
                        "priority": step,
                        "bulk_job_id": job_id,
                        "idempotency_key": f"{idempotency_key}:{i}" if idempotency_key else None,
                        "max_attempts": settings.max_attempts,
                        # Every row has the same keys (one statement for all).
                        **(
                            {
                                "status": MessageStatus.FAILED,
                                "error_message": optout.OPTED_OUT_ERROR,
                                "failed_at": now,
                                "dispatched_at": None,
                            }
                            if r.to_number in opted_out
                            else {
                                "status": waiting,
                                "error_message": None,
                                "failed_at": None,
                                "dispatched_at": None if timing.scheduled else now,
                            }
                        ),
                        "send_at": timing.send_at,
                        "expires_at": timing.expires_at,
                        "category": row.category if row else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, r in enumerate(rows)
                ],
            )
            # Opted-out recipients' messages are failed from the start: their status events.
            refused = [ids[i] for i, r in enumerate(rows) if r.to_number in opted_out]
            if refused:
                webhooks.record(db, refused, MessageStatus.FAILED)
    except IntegrityError:
        existing = _job_of_key(settings, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing
    if not timing.scheduled:
        publish(app, [i for i, r in zip(ids, rows, strict=True) if r.to_number not in opted_out], step)
    return job_id


def _prepare(
    settings: Settings,
    recipient: Mapping[str, Any],
    template: Template | None,
    text: str | None,
    shared: Mapping[str, Any] | None,
) -> _Row:
    if not isinstance(recipient, Mapping):
        raise InvalidMessage("a recipient must be a mapping like {'whatsapp': number, 'data': {...}}")
    number = recipient.get("whatsapp", recipient.get("to"))
    own = recipient.get("data") or {}
    if not isinstance(own, Mapping):
        raise InvalidMessage("a recipient's data must be a mapping")
    to = normalize(number, settings.default_region).number
    refuse_nul(own, "data")
    data = {**(shared or {}), **own}
    if template is not None:
        content = rendering.render(template.content, data, name=f"template {template.name!r}")
    else:
        content = str(text)
    return _Row(to_number=to, content=content, data=data or None)


def _job_of_key(settings: Settings, key: str) -> str | None:
    with session_scope(settings.database) as db:
        return db.scalar(select(Message.bulk_job_id).where(Message.idempotency_key == f"{key}:0"))


def publish(app: Celery, message_ids: Sequence[str], priority: int) -> int:
    """Publish ``wa.dispatch_batch`` per batch; returns how many batches reached the broker. A
    batch that did not stays ``queued`` for the sweeper."""
    published = 0
    for start in range(0, len(message_ids), BATCH_SIZE):
        try:
            app.send_task(
                task_names.DISPATCH_BATCH,
                kwargs={"message_ids": list(message_ids[start : start + BATCH_SIZE])},
                priority=priority,
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
            published += 1
        except OperationalError:
            break
    return published


def progress(settings: Settings, job_id: str) -> dict[str, Any]:
    """A job's counts by status, computed from its message rows."""
    with session_scope(settings.database) as db:
        job = db.scalar(select(QueueJob).where(QueueJob.job_id == job_id))
        if job is None:
            raise UnknownJob(f"no bulk job with id {job_id!r}")
        counts = dict(
            db.execute(
                select(Message.status, func.count()).where(Message.bulk_job_id == job_id).group_by(Message.status)
            ).all()
        )
    return summary(job, counts)


def summary(job: QueueJob, counts: Mapping[str, int]) -> dict[str, Any]:
    """A job's progress from its message counts by status (``progress``, and job lists)."""
    by = {s.value: int(counts.get(s.value, 0)) for s in MessageStatus}
    finished = by["sent"] + by["delivered"] + by["read"] + by["failed"] + by["cancelled"] + by["expired"]
    status = job.status
    if status == JobStatus.RUNNING and finished == job.total:
        status = JobStatus.COMPLETED
    return {
        "id": job.job_id,
        "status": status,
        "total": job.total,
        "scheduled": by["scheduled"],
        "queued": by["queued"] + by["routed"] + by["sending"],
        "sent": by["sent"] + by["delivered"] + by["read"],
        "delivered": by["delivered"] + by["read"],
        "read": by["read"],
        "failed": by["failed"],
        "cancelled": by["cancelled"],
        "expired": by["expired"],
        "byStatus": by,
    }


def cancel(settings: Settings, job_id: str) -> int:
    """Cancel what of a job was not yet sent; returns how many messages were cancelled."""
    now = utcnow()
    with session_scope(settings.database) as db:
        updated = db.execute(
            update(QueueJob).where(QueueJob.job_id == job_id).values(status=JobStatus.CANCELLED, completed_at=now)
        )
        if not updated.rowcount:  # type: ignore[attr-defined]
            raise UnknownJob(f"no bulk job with id {job_id!r}")
        where = [
            Message.bulk_job_id == job_id,
            Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.ROUTED]),
        ]
        return lifecycle.update_many(db, where, MessageStatus.CANCELLED, cancelled_at=now)
