"""The Celery tasks of wa-tasks and their stable public names.

Public (callable from any codebase with ``send_task(name, kwargs=..., priority=...)``, no import
of wa_tasks needed):

``wa.send``  kwargs: ``to`` (str, required), ``text`` (str) or ``template`` (str) with ``data``
             (dict), ``priority`` ("urgent"|"high"|"normal"|"low"|0..9; default: the task
             message's own priority, else "normal"), ``idempotency_key`` (str), ``session`` (str),
             ``email`` (str, optional; default ``data["customer_email"]``): the email fallback's
             address; ``send_at``/``expires_at`` (ISO 8601 with an offset, or a unix time): stored
             ``scheduled`` and sent when due / ``expired`` if not sent by then; ``notice_key``,
             ``ref``, ``tz``, ``callback_url`` (an http(s) URL for this message's status events).
             Returns the message id. A request the thin client would refuse (bad number,
             empty text, unknown template or session, missing template data, an unknown argument)
             is stored as a ``failed`` message whose error says why.
``wa.status`` kwargs: ``message_id``. Returns the status dict (needs a result backend to read
             the return value; the thin client reads the database directly instead).
``wa.notify`` kwargs: ``event`` ("invoice.created", "payment.completed", "service.expiring",
             "voucher.activated", "bulk.send"), ``data`` (dict: the template data with
             ``customer_whatsapp``), ``idempotency_key``; optionally ``template``/``priority``
             to override the event's mapping, ``send_at``/``expires_at``. Returns the message id
             (a job id for bulk.send).
             A refused trigger is stored as a ``failed`` message whose error says why.

Internal: ``wa.release`` (beat: queues the due scheduled messages, ``wa_tasks.pipeline.schedule``),
``wa.deliver_webhooks`` (beat, on its own queue ``wa.webhooks``: the status events,
``wa_tasks.pipeline.webhook_delivery``), ``wa.dispatch`` (routes a queued message to
``wa.session.<id>``), ``wa.deliver``
(consumed by the session host, not by this worker), ``wa.sweep`` (beat: republishes stale
``queued`` messages), ``wa.health_check``, ``wa.retention`` and ``wa.metrics_rollup`` (beat), ``wa.email_fallback``
(one fallback email, ``wa_tasks.pipeline.fallback``), ``wa.contacts_refresh`` (beat, ``wa_tasks.pipeline.contacts``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
from typing import Any

from celery import Task
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import Message, MessageStatus, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.core import priorities, redis_keys, routing, task_names, timefmt, triggers
from wa_tasks.errors import InvalidRequest
from wa_tasks.infra.celery_app import app, app_for
from wa_tasks.infra.logs import MessageLog
from wa_tasks.infra.redis_client import client_for, unacked
from wa_tasks.pipeline import affinity, fallback, lifecycle, live_state, outcomes, schedule, submit
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import Settings, get_settings

log = logging.getLogger(__name__)


@app.task(name=task_names.SEND, bind=True)
def send(
    self: Task,
    to: object = None,
    text: object = None,
    template: object = None,
    data: object = None,
    priority: object = None,
    idempotency_key: object = None,
    session: object = None,
    email: object = None,
    send_at: object = None,
    expires_at: object = None,
    notice_key: object = None,
    ref: object = None,
    tz: object = None,
    callback_url: object = None,
    **unknown: object,
) -> str:
    settings = get_settings()
    if priority is None:
        priority = (self.request.delivery_info or {}).get("priority")
    # A redelivered wa.send (worker died before its ack) must not create a second message.
    key = idempotency_key if idempotency_key is not None else f"task:{self.request.id}"
    try:
        _refuse_unknown(task_names.SEND, unknown, SEND_ARGUMENTS)
        # Untyped input from another codebase: SendRequest's checks are what type it.
        fields: dict[str, Any] = {
            "to": to,
            "text": text,
            "template": template,
            "data": data,
            "priority": priority if priority is not None else priorities.DEFAULT,
            "idempotency_key": key,
            "session": session,
            "email": email,
            "send_at": send_at,
            "expires_at": expires_at,
            "notice_key": notice_key,
            "ref": ref,
            "tz": tz,
            "callback_url": callback_url,
        }
        return submit.queue(settings, app, SendRequest(**fields))
    except InvalidRequest as exc:
        step = priority if isinstance(priority, int) and 0 <= priority <= 9 else priorities.LEVELS["normal"]
        return submit.record_refusal(settings, to=to, error=exc, idempotency_key=_refusal_key(self, key), priority=step)


#: The keyword arguments of the public tasks (an unknown one is refused, not a worker traceback).
SEND_ARGUMENTS = (
    "to",
    "text",
    "template",
    "data",
    "priority",
    "idempotency_key",
    "session",
    "email",
    "send_at",
    "expires_at",
    "notice_key",
    "ref",
    "tz",
    "callback_url",
)
NOTIFY_ARGUMENTS = ("event", "data", "idempotency_key", "template", "priority", "session", "send_at", "expires_at")


def _refuse_unknown(task: str, unknown: dict[str, object], known: tuple[str, ...]) -> None:
    """A misspelt argument from another codebase (``txt=``) is a refused request with a reason,
    recorded like any other, rather than a TypeError that only the worker's log shows."""
    if unknown:
        names = ", ".join(repr(name) for name in sorted(unknown))
        plural = "s" if len(unknown) > 1 else ""
        raise InvalidRequest(f"unknown argument{plural} {names} for {task}; it takes {', '.join(known)}")


def _refusal_key(task: Task, key: object) -> str:
    """The idempotency key a refusal is recorded under: the caller's if it is a usable one, else
    the task id's, so that a redelivered refused task is recorded once."""
    if isinstance(key, str) and key.strip() and len(key) <= 200 and "\x00" not in key:
        return key
    return f"task:{task.request.id}"


@app.task(name=task_names.STATUS)
def status(message_id: str) -> dict[str, Any] | None:
    with session_scope(get_settings().database) as db:
        message = db.get(Message, message_id)
        return lifecycle.status_view(message) if message else None


def _backoff(retries: int, cap: float) -> float:
    """Exponential backoff with full jitter: 1, 2, 4 … seconds, capped, then jittered to 50–100 %."""
    delay = min(cap, 2.0 ** min(retries, 32))
    return delay * random.uniform(0.5, 1.0)


def _candidates(
    settings: Settings, db: Session, priority: int | None = None
) -> tuple[list[routing.Candidate], dict[str, live_state.LiveState]]:
    """Every configured session with its live state (and backlog, when the policy needs it).

    With ``priority`` (one message's), the backlog is what that message would wait behind: the
    messages of the same or a higher priority, plus the time until the session's pace slot opens.
    An urgent message so goes to the session that sends it soonest, not to the one with the
    smaller bulk backlog, and two urgent ones a moment apart go to two sessions."""
    rows = db.execute(select(WhatsAppSession.session_id, WhatsAppSession.priority, WhatsAppSession.pace_seconds)).all()
    redis = client_for(settings.redis)
    states = live_state.read(redis, [r.session_id for r in rows])
    now = live_state.now()
    backlog: dict[str, int] = {}
    ready: dict[str, float] = {}
    if settings.routing_policy != "failover":
        steps = 10 if priority is None else priority + 1
        backlog = live_state.backlogs(redis, [redis_keys.session_queue(r.session_id) for r in rows], steps)
        if priority is not None:
            ready = live_state.ready_in(redis, [r.session_id for r in rows])
    return [
        routing.Candidate(
            session_id=r.session_id,
            priority=r.priority,
            connected=r.session_id in states and states[r.session_id].usable(now),
            backlog=backlog.get(redis_keys.session_queue(r.session_id), 0),
            ready_in_seconds=ready.get(r.session_id, 0.0),
            pace_seconds=r.pace_seconds if r.pace_seconds is not None else settings.pace_seconds,
        )
        for r in rows
    ], states


def _choose(
    settings: Settings,
    candidates: list[routing.Candidate],
    requested: str | None,
    exclude: list[str] | None,
    known: str | None = None,
) -> str | None:
    """``known``: the session that last sent to or heard from the recipient (``pipeline.affinity``),
    preferred while usable; a ``requested`` session still wins."""
    return routing.choose(
        candidates,
        requested=requested,
        exclude=exclude or (),
        policy=settings.routing_policy,
        spillover_wait_seconds=settings.spillover_wait_seconds,
        known=known,
    )


@app.task(name=task_names.DISPATCH, bind=True, max_retries=None)
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
        now = utcnow()
        if message.expires_at is not None and message.expires_at <= now:
            if lifecycle.expire(db, message_id, now):
                mlog.info("expired before it was routed (expires_at %s): not sent", timefmt.iso(message.expires_at))
            return None
        candidates, states = _candidates(settings, db, message.priority)
        refusers = live_state.new_contact_refusers(
            client_for(settings.redis), states, message.to_number, live_state.now()
        )
        # A requested session takes no other: its recipient's history does not matter.
        known = None if message.requested_session else affinity.known_session(db, message.to_number)
        chosen = _choose(settings, candidates, message.requested_session, [*(exclude or ()), *refusers], known)
        if chosen is None:
            lifecycle.touch_dispatched(db, message_id)
            db.commit()
            delay = _backoff(self.request.retries, settings.dispatch_retry_max_seconds)
            mlog.info("no usable session, retrying dispatch in %.1fs", delay)
            # The exclusion (the session that just handed it back) holds for this try only: by the
            # next one that session may be usable again, and it may be the only one.
            raise self.retry(countdown=delay, kwargs={"message_id": message_id})
        # Publish first, then commit "routed": a crash in between leaves a queued row with a
        # deliver on its way (the host may claim a queued row), never a routed row without one.
        _publish_deliver(message_id, chosen, message.priority)
        if not lifecycle.route(db, message_id, chosen):
            return None
    MessageLog(log, message_id, message.to_number, chosen).info("routed")
    return chosen


@app.task(name=task_names.DISPATCH_BATCH)
def dispatch_batch(message_ids: list[str]) -> int:
    """Route many queued messages with one read of the session state (bulk sends). Messages that
    cannot be routed now fall back to a single ``wa.dispatch`` each, which waits and retries.
    A batch whose worker died runs again within seconds (``wa_tasks.infra.worker_lost``): only the
    messages still ``queued`` are routed, so a batch that got half-way routes the rest."""
    settings = get_settings()
    routed: list[tuple[str, str, int]] = []
    waiting: list[tuple[str, int]] = []
    with session_scope(settings.database) as db:
        candidates, states = _candidates(settings, db)
        redis, now = client_for(settings.redis), live_state.now()
        backlog = {c.session_id: c.backlog for c in candidates}
        messages = db.execute(
            select(
                Message.id, Message.priority, Message.requested_session, Message.to_number, Message.expires_at
            ).where(Message.id.in_(message_ids), Message.status == MessageStatus.QUEUED)
        ).all()
        # One query for the whole batch: who knows each recipient.
        known = affinity.known_sessions(db, [m.to_number for m in messages if not m.requested_session])
        for m in messages:
            if m.expires_at is not None and m.expires_at <= utcnow():
                lifecycle.expire(db, m.id, utcnow())  # never sent late
                continue
            current = [dataclasses.replace(c, backlog=backlog[c.session_id]) for c in candidates]
            refusers = live_state.new_contact_refusers(redis, states, m.to_number, now)
            chosen = _choose(settings, current, m.requested_session, refusers, known.get(m.to_number))
            if chosen is None:
                waiting.append((m.id, m.priority))
            else:
                backlog[chosen] += 1
                routed.append((m.id, chosen, m.priority))
        # As in dispatch: publish every deliver (on one producer), then commit the routes (one
        # UPDATE per session rather than one per message).
        with app.producer_or_acquire() as producer:
            for message_id, session_id, priority in routed:
                _publish_deliver(message_id, session_id, priority, producer)
        by_session: dict[str, list[str]] = {}
        for message_id, session_id, _priority in routed:
            by_session.setdefault(session_id, []).append(message_id)
        for session_id, ids in by_session.items():
            lifecycle.route_many(db, ids, session_id)
    for message_id, priority in waiting:
        outcomes.publish_dispatch(app, message_id, priority, countdown=1.0)
    return len(routed)


def _publish_deliver(message_id: str, session_id: str, priority: int, producer: Any = None) -> None:
    app.send_task(
        task_names.DELIVER,
        kwargs={"message_id": message_id},
        queue=redis_keys.session_queue(session_id),
        priority=priority,
        producer=producer,
    )


@app.task(name=task_names.SWEEP)
def sweep(limit: int = 1000) -> int:
    """Republish ``dispatch`` for messages still ``queued`` long after their last dispatch (a crash
    between commit and publish, or a broker outage), ``deliver`` for the ``routed`` messages a
    restarted broker may have lost (see :func:`_redeliver_after_broker_restart`) or a killed host
    took with it (see :func:`_redeliver_lost_routed`), and the
    email fallbacks left ``queued`` as long (``fallback.republish_stale``). Returns how many
    ``dispatch`` tasks were republished."""
    settings = get_settings()
    _redeliver_after_broker_restart(settings)
    cutoff = utcnow() - dt.timedelta(seconds=settings.sweep_after_seconds)
    _redeliver_lost_routed(settings, cutoff, limit)
    fallback.republish_stale(app, settings, cutoff, limit)
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
        if outcomes.publish_dispatch(app, row.id, row.priority):
            count += 1
    if stale:
        log.warning("sweeper republished %d stale queued message(s)", count)
    return count


def _redeliver_lost_routed(settings: Settings, cutoff: dt.datetime, limit: int) -> int:
    """Publish ``deliver`` again for ``routed`` messages whose ``deliver`` is gone from a running
    broker; returns how many.

    Redis pops a message for a consumer's ``BRPOP`` before kombu records it as unacknowledged (the
    reply is read, then written to the ``unacked`` hash, in the consumer's process); a BRPOP left
    waiting between two paced takes may even have its reply sit unread in the socket. A session host
    killed in between loses that ``deliver``, and its message would stay ``routed`` for ever. So a
    message routed before ``cutoff`` on a session whose queue is empty and that has nothing
    unacknowledged gets its ``deliver`` again: with nothing of that session left in the broker, no
    ``deliver`` of it can be on its way. Should one be after all (a reply still unread by a live
    host), the copy is skipped by the host's conditional claim."""
    with session_scope(settings.database) as db:
        rows = db.execute(
            select(Message.id, Message.session_id, Message.priority)
            .where(Message.status == MessageStatus.ROUTED, Message.routed_at < cutoff)
            .order_by(Message.routed_at)
            .limit(limit)
        ).all()
    by_session: dict[str, list[Any]] = {}
    for row in rows:
        if row.session_id:
            by_session.setdefault(row.session_id, []).append(row)
    if not by_session:
        return 0
    queues = {sid: redis_keys.session_queue(sid) for sid in by_session}
    try:
        lengths = live_state.step_lengths(client_for(settings.redis), queues.values())
        with app.connection_for_write() as conn:
            channel: Any = conn.default_channel
            in_flight = {name for _tag, *route in unacked(channel) for name in route}
        count = 0
        with app.producer_or_acquire() as producer:
            for sid, messages in by_session.items():
                if sum(lengths[queues[sid]]) or queues[sid] in in_flight:
                    continue  # its deliver may be waiting there: the host takes it in turn
                for row in messages:
                    _publish_deliver(row.id, sid, row.priority, producer)
                    count += 1
    except (RedisError, OperationalError, OSError) as exc:
        log.warning("lost deliver check skipped: %s", exc)
        return 0
    if count:
        log.warning("deliver republished for %d routed message(s) whose deliver left the broker", count)
    return count


#: Allowance on the broker's start time: INFO gives its uptime in whole seconds, and the message's
#: ``routed_at`` comes from the clock of the worker that routed it, perhaps another machine's.
BROKER_START_MARGIN_SECONDS = 2.0


def _redeliver_after_broker_restart(settings: Settings) -> None:
    """A ``routed`` message's only trace in the broker is its ``deliver`` task. A Redis that
    restarted may have lost it: everything without persistence, up to a second of writes with
    ``appendfsync everysec`` after a power loss. The message would then stay ``routed`` for ever.
    So when the broker is not the one the last sweep saw, ``deliver`` is published again; a copy
    that was not lost is skipped by the host's conditional claim.

    The sweeper keeps the broker's ``run_id`` in the broker itself (``redis_keys.BROKER_RUN_ID``):

    - the same run id: nothing happened;
    - another run id: Redis restarted, perhaps losing writes, or a replica took over (which may
      lack the last writes whatever its uptime): ``deliver`` for every routed message;
    - no run id: either no sweep ever ran on this Redis (a new installation, a first start), or
      Redis lost everything (restarted without persistence, a new server) and the key with it.
      Only a message routed before this Redis process started can have lost its ``deliver`` in
      either case, so those, and only those, get it again: a fresh Redis under a running
      installation republishes nothing that it holds itself (its delivers were published to it),
      while a Redis that came back empty republishes everything routed before it came back.
      (A FLUSHALL of a running Redis is not told apart from a first start: an operator's doing.)

    The new run id is stored after the republishing, so a sweep that dies half-way is redone."""
    redis = client_for(settings.redis)
    try:
        server = redis.info("server")
        run_id, uptime = str(server["run_id"]), float(server["uptime_in_seconds"])
        seen = redis.get(redis_keys.BROKER_RUN_ID)
    except (RedisError, KeyError, ValueError) as exc:  # INFO renamed away by a managed Redis: no detection
        log.debug("broker restart check skipped: %s", exc)
        return
    if seen == run_id:
        return
    query = select(Message.id, Message.session_id, Message.priority).where(Message.status == MessageStatus.ROUTED)
    if seen is None:
        started = utcnow() - dt.timedelta(seconds=uptime - BROKER_START_MARGIN_SECONDS)
        query = query.where(or_(Message.routed_at.is_(None), Message.routed_at < started))
    with session_scope(settings.database) as db:
        routed = db.execute(query).all()
    for row in routed:
        if row.session_id:
            _publish_deliver(row.id, row.session_id, row.priority)
    redis.set(redis_keys.BROKER_RUN_ID, run_id)
    if routed and seen is None:
        log.warning(
            "broker came back without its data (or is a new Redis): deliver republished for %d message(s) "
            "routed before it started",
            len(routed),
        )
    elif routed:
        log.warning("broker restarted: deliver republished for %d routed message(s)", len(routed))


@app.task(name=task_names.NOTIFY, bind=True)
def notify(
    self: Task,
    event: object = None,
    data: object = None,
    idempotency_key: object = None,
    template: object = None,
    priority: object = None,
    session: object = None,
    send_at: object = None,
    expires_at: object = None,
    **unknown: object,
) -> str:
    """A billing event (``wa_tasks.core.triggers``) sends its template to ``data["customer_whatsapp"]``;
    returns the message id (a bulk job id for ``bulk.send``). A refused trigger (unknown event, no
    customer number, missing template data, an opted-out customer) is stored as a ``failed``
    message whose error says why: a trigger failure is recorded, never swallowed."""
    settings = get_settings()
    # A redelivered wa.notify (worker died before its ack) must not send a second message.
    key = idempotency_key if idempotency_key is not None else f"task:{self.request.id}"
    try:
        _refuse_unknown(task_names.NOTIFY, unknown, NOTIFY_ARGUMENTS)
        planned = triggers.plan(
            event,
            data,
            idempotency_key=key,  # type: ignore[arg-type]  # checked by the send it leads to
            template=template,  # type: ignore[arg-type]
            priority=priority,  # type: ignore[arg-type]
            session=session,  # type: ignore[arg-type]
            send_at=send_at,  # type: ignore[arg-type]  # checked by the send it leads to
            expires_at=expires_at,  # type: ignore[arg-type]
        )
        return submit.carry_out(settings, app_for(settings), planned)
    except InvalidRequest as exc:
        return submit.record_refusal(
            settings,
            to=triggers.refused_recipient(event, data),
            error=exc,
            idempotency_key=_refusal_key(self, key),
            priority=triggers.refused_priority(event, priority),
        )


@app.task(name=task_names.RELEASE)
def release() -> dict[str, Any]:
    """Beat, every ``WA_RELEASE_INTERVAL_SECONDS``: queue the due ``scheduled`` messages and expire
    the ones past their ``expires_at`` (``wa_tasks.pipeline.schedule``)."""
    settings = get_settings()
    return schedule.release(settings, app_for(settings)).as_dict()


@app.task(name=task_names.DELIVER_WEBHOOKS)
def deliver_webhooks() -> dict[str, int]:
    """Beat, every ``WA_WEBHOOK_INTERVAL_SECONDS``, on the ``wa.webhooks`` queue: send the due status
    events of the outbox for about 20 s (``wa_tasks.pipeline.webhook_delivery``)."""
    from wa_tasks.pipeline import webhook_delivery

    settings = get_settings()
    return webhook_delivery.run(settings, app_for(settings)).as_dict()


@app.task(name=task_names.HEALTH_CHECK)
def health_check() -> dict[str, str]:
    """Beat, every 30 s: probe every session and record its health (``wa_tasks.ops.health``)."""
    from wa_tasks.ops import health

    return {r.session_id: r.health for r in health.check_all(get_settings())}


@app.task(name=task_names.RETENTION)
def retention() -> dict[str, int]:
    """Beat, daily at 02:00 WIB: delete what is older than the retention limits (``wa_tasks.ops.retention``)."""
    from wa_tasks.ops import retention as data_retention

    return data_retention.cleanup(get_settings()).as_dict()


@app.task(name=task_names.METRICS_ROLLUP)
def metrics_rollup(day: str | None = None) -> dict[str, Any]:
    """Beat, daily after midnight WIB: store yesterday's figures (or ``day``, ``YYYY-MM-DD``) in
    ``whatsapp_daily_metrics``; a re-run replaces that day's rows (``wa_tasks.ops.metrics``)."""
    from wa_tasks.ops import metrics

    return metrics.rollup(get_settings(), dt.date.fromisoformat(day) if day else None)


@app.task(name=task_names.SAMPLE_DEPTH)
def sample_depth() -> dict[str, int]:
    """Beat, every 30 s: record every session's queue depth for the dashboard's depth chart
    (``wa_tasks.admin.dashboard``; kept 24 h in Redis)."""
    from wa_tasks.admin import dashboard

    return dashboard.sample_all(get_settings())


@app.task(name=task_names.EMAIL_FALLBACK)
def email_fallback(message_id: str) -> str | None:
    """Send a failed message's fallback email once (``wa_tasks.pipeline.fallback``); returns its fallback status."""
    return fallback.deliver(get_settings(), message_id)


@app.task(name=task_names.CONTACTS_REFRESH)
def contacts_refresh() -> int:
    """Beat, daily: ask WhatsApp again about numbers whose cached answer is older than
    ``WA_CONTACT_MAX_AGE_DAYS`` (``wa_tasks.pipeline.contacts``); returns how many were refreshed."""
    from wa_tasks.pipeline import contacts

    return contacts.refresh(get_settings())
