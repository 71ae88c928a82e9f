"""Data retention, run by beat once a day: old messages, ended bulk jobs and long
disconnected sessions are deleted, in batches so that a large table is never locked for long.

What goes, with the default settings:
- messages created more than ``WA_RETENTION_MESSAGES_DAYS`` (15) days ago, whatever their status,
  unless they were due (``send_at``) less long ago: a reminder scheduled a month ahead stays until
  that long after its time;
- bulk jobs (``whatsapp_queue_jobs``) created more than ``WA_RETENTION_JOBS_DAYS`` (30) days ago
  that ended: ``completed``, ``failed`` or ``cancelled`` (a pending or running job stays);
- sessions whose status is ``disconnected`` and whose row was not updated for
  ``WA_RETENTION_SESSIONS_DAYS`` (90) days;
- status events (``whatsapp_webhook_events``) delivered or dead, as old as the messages that go:
  their messages are gone or going (an event still pending stays until it is delivered or dead).

Before a batch of messages goes, the latest send per number among them is kept in
``whatsapp_known_contacts`` (``wa_tasks.pipeline.affinity.remember``), in the same transaction:
routing still knows which number a customer knows after their messages are gone.

Opt-outs (``whatsapp_opt_outs``) are never deleted: a customer who said STOP keeps saying it.
Messages still referring to a deleted job or session keep their row; the foreign key sets the
reference to NULL. Messages go first, so that the later deletes rarely have references to clear.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import PENDING_EVENT, JobStatus, Message, QueueJob, SessionStatus, WebhookEvent, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.pipeline import affinity
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Rows deleted per statement; each batch is its own transaction, so locks are short.
BATCH_SIZE = 1000

#: Bulk job statuses after which a job is history.
ENDED_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Cleanup:
    """Rows deleted by one retention run, per table."""

    messages: int
    jobs: int
    sessions: int
    webhook_events: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "jobs": self.jobs,
            "sessions": self.sessions,
            "webhook_events": self.webhook_events,
        }


def cleanup(settings: Settings, *, now: dt.datetime | None = None, batch_size: int = BATCH_SIZE) -> Cleanup:
    """Delete what is older than the retention limits of ``settings``; returns the counts."""
    now = now or utcnow()
    day = dt.timedelta(days=1)
    cutoff = now - settings.retention_messages_days * day
    messages = _delete_in_batches(
        settings,
        Message.id,
        (Message.created_at < cutoff) & or_(Message.send_at.is_(None), Message.send_at < cutoff),
        batch_size,
        before=_remember_sends,
    )
    jobs = _delete_in_batches(
        settings,
        QueueJob.id,
        (QueueJob.created_at < now - settings.retention_jobs_days * day) & QueueJob.status.in_(ENDED_JOB_STATUSES),
        batch_size,
    )
    sessions = _delete_in_batches(
        settings,
        WhatsAppSession.id,
        (WhatsAppSession.updated_at < now - settings.retention_sessions_days * day)
        & (WhatsAppSession.status == SessionStatus.DISCONNECTED),
        batch_size,
    )
    events = _delete_in_batches(
        settings,
        WebhookEvent.id,
        (WebhookEvent.created_at < cutoff) & (WebhookEvent.state != PENDING_EVENT),
        batch_size,
    )
    result = Cleanup(messages, jobs, sessions, events)
    log.info("retention: deleted %s", result.as_dict())
    return result


def _remember_sends(db: Session, ids: Sequence[Any]) -> None:
    """Keep who last sent to each recipient of the messages ``ids`` before they are deleted."""
    affinity.remember(
        db,
        db.execute(select(Message.to_number, Message.session_id, Message.sent_at).where(Message.id.in_(ids))).all(),
    )


def _delete_in_batches(
    settings: Settings,
    key: InstrumentedAttribute[Any],
    condition: ColumnElement[bool],
    batch_size: int,
    *,
    before: Callable[[Session, Sequence[Any]], None] | None = None,
) -> int:
    """Delete the rows matching ``condition``, ``batch_size`` primary keys per transaction;
    ``before`` sees each batch's keys first, in the same transaction."""
    table = key.class_.__table__
    total = 0
    while True:
        with session_scope(settings.database) as db:
            ids = db.scalars(select(key).where(condition).limit(batch_size)).all()
            if not ids:
                return total
            if before is not None:
                before(db, ids)
            # The condition is repeated: a row updated since the select (a session reconnecting) stays.
            deleted = db.execute(delete(table).where(key.in_(ids)).where(condition))
        total += int(getattr(deleted, "rowcount", 0) or 0)
