"""The Celery tasks of wa-tasks and their stable public names.

Public (callable from any codebase with ``send_task(name, kwargs=..., priority=...)``, no import
of wa_tasks needed):

``wa.send``  kwargs: ``to`` (str, required), ``text`` (str) or ``template`` (str) with ``data``
             (dict), ``priority`` ("urgent"|"high"|"normal"|"low"|0..9; default: the task
             message's own priority, else "normal"), ``idempotency_key`` (str), ``session`` (str).
             Returns the message id. A request the thin client would refuse (bad number, empty
             text, unknown template or session, missing template data) is stored as a ``failed``
             message whose error says why.
``wa.status`` kwargs: ``message_id``. Returns the status dict (needs a result backend to read
             the return value; the thin client reads the database directly instead).

Internal: ``wa.dispatch`` (routes a queued message to ``wa.session.<id>``), ``wa.deliver``
(consumed by the session host, not by this worker), ``wa.sweep`` (beat: republishes stale
``queued`` messages).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any

from celery import Task
from sqlalchemy import select

from models import Message, MessageStatus, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks import keys, lifecycle, live_state, priorities, routing, submit
from wa_tasks.celery_app import app
from wa_tasks.errors import InvalidRequest
from wa_tasks.logs import MessageLog
from wa_tasks.redis_client import client_for
from wa_tasks.settings import get_settings

log = logging.getLogger(__name__)

#: Name of the task the session host consumes from ``wa.session.<id>``.
DELIVER_TASK = "wa.deliver"


@app.task(name="wa.send", bind=True)
def send(
    self: Task,
    to: object = None,
    text: object = None,
    template: object = None,
    data: object = None,
    priority: object = None,
    idempotency_key: object = None,
    session: object = None,
) -> str:
    settings = get_settings()
    if priority is None:
        priority = (self.request.delivery_info or {}).get("priority")
    # A redelivered wa.send (worker died before its ack) must not create a second message.
    key = idempotency_key if idempotency_key is not None else f"task:{self.request.id}"
    try:
        with session_scope(settings.database) as db:
            prepared = submit.prepare(
                db,
                settings,
                to=to,
                text=text,
                template=template,
                data=data,
                priority=priority,
                idempotency_key=key,
                session=session,
            )
    except InvalidRequest as exc:
        step = priority if isinstance(priority, int) and 0 <= priority <= 9 else priorities.LEVELS["normal"]
        return submit.record_refusal(
            settings,
            to=to,
            reason=f"{exc.code}: {exc}",
            idempotency_key=key if isinstance(key, str) else None,
            priority=step,
        )
    message_id, created = submit.persist(settings, prepared)
    if created:
        submit.publish_dispatch(app, message_id, prepared.priority)
    return message_id


@app.task(name="wa.status")
def status(message_id: str) -> dict[str, Any] | None:
    with session_scope(get_settings().database) as db:
        message = db.get(Message, message_id)
        return lifecycle.status_view(message) if message else None


def _backoff(retries: int, cap: float) -> float:
    """Exponential backoff with full jitter: 1, 2, 4 … seconds, capped, then jittered to 50–100 %."""
    delay = min(cap, 2.0 ** min(retries, 32))
    return delay * random.uniform(0.5, 1.0)


@app.task(name="wa.dispatch", bind=True, max_retries=None)
def dispatch(self: Task, message_id: str, exclude: list[str] | None = None) -> str | None:
    """Route a ``queued`` message to a session's queue; wait (retry) while no session is usable."""
    settings = get_settings()
    with session_scope(settings.database) as db:
        message = db.get(Message, message_id)
        if message is None:
            log.warning("dispatch of unknown message %s ignored", message_id)
            return None
        mlog = MessageLog(log, message_id, message.to_number, message.session_id)
        if message.status == MessageStatus.ROUTED and message.session_id:
            # A redelivered dispatch whose deliver may not have been published: publish it again.
            # A second deliver is harmless (the host's claim is conditional).
            _publish_deliver(message.id, message.session_id, message.priority)
            return message.session_id
        if message.status != MessageStatus.QUEUED:
            return None
        rows = db.execute(select(WhatsAppSession.session_id, WhatsAppSession.priority)).all()
        states = live_state.read(client_for(settings.redis), [r.session_id for r in rows])
        candidates = [
            routing.Candidate(r.session_id, r.priority, r.session_id in states and states[r.session_id].connected)
            for r in rows
        ]
        chosen = routing.choose(candidates, requested=message.requested_session, exclude=exclude or ())
        if chosen is None:
            lifecycle.touch_dispatched(db, message_id)
            db.commit()
            delay = _backoff(self.request.retries, settings.dispatch_retry_max_seconds)
            mlog.info("no usable session, retrying dispatch in %.1fs", delay)
            raise self.retry(countdown=delay)
        if not lifecycle.route(db, message_id, chosen):
            return None
        db.commit()
        priority = message.priority
    _publish_deliver(message_id, chosen, priority)
    MessageLog(log, message_id, message.to_number, chosen).info("routed")
    return chosen


def _publish_deliver(message_id: str, session_id: str, priority: int) -> None:
    app.send_task(
        DELIVER_TASK, kwargs={"message_id": message_id}, queue=keys.session_queue(session_id), priority=priority
    )


@app.task(name="wa.sweep")
def sweep(limit: int = 1000) -> int:
    """Republish ``dispatch`` for messages still ``queued`` long after their last dispatch (a crash
    between commit and publish, or a broker outage). Returns how many were republished."""
    settings = get_settings()
    cutoff = utcnow() - dt.timedelta(seconds=settings.sweep_after_seconds)
    with session_scope(settings.database) as db:
        stale = db.execute(
            select(Message.id, Message.priority)
            .where(Message.status == MessageStatus.QUEUED, Message.dispatched_at < cutoff)
            .order_by(Message.priority, Message.created_at)
            .limit(limit)
        ).all()
        for row in stale:
            lifecycle.touch_dispatched(db, row.id)
    count = 0
    for row in stale:
        if submit.publish_dispatch(app, row.id, row.priority):
            count += 1
    if stale:
        log.warning("sweeper republished %d stale queued message(s)", count)
    return count
