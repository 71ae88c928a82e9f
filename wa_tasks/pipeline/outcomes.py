"""What becomes of a message a session host took: one function per outcome of a delivery, each
doing its database writes and then the publish that must follow, and returning the outcome.

The order inside each is what the delivery semantics (``wa_tasks.pipeline.lifecycle``) rely on:
- Every write runs in a transaction of its own, through a dropped database connection if need be
  (``models.db.write_through_disconnects``): a message left ``sending`` is failed as an ambiguous
  send when its task comes back, so losing the write would turn a sent message, a retry or a
  reroute into a failure. Each is a conditional update, safe to run twice; a session's error count
  alone may count one error twice.
- A publish comes after the commit of the write it follows: the ``dispatch`` of a rerouted or
  retried message finds the row ``queued`` (routing moves only ``queued`` rows), and the email
  fallback finds it ``failed``. A lost publish leaves the row ``queued`` (or its fallback
  ``queued``), which the sweeper publishes again.
- The host acknowledges the broker's ``deliver`` only after the outcome returned: a host that dies
  before leaves the task to be delivered again, and the conditional updates make that copy harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy import Connection

from models import utcnow
from models.db import write_through_disconnects
from wa_tasks.core import priorities, redis_keys, task_names
from wa_tasks.infra.logs import MessageLog
from wa_tasks.pipeline import fallback, lifecycle
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"  #: transient error; dispatched again after a backoff
    REROUTED = "rerouted"  #: the session could not send; dispatched again to another session
    AMBIGUOUS = "ambiguous"  #: found mid-send after a crash; failed without resending
    SKIPPED = "skipped"  #: already sent, cancelled, or routed elsewhere: a duplicate task
    DEFERRED = "deferred"  #: the host is stopping: the message goes back to its queue unsent
    EXPIRED = "expired"  #: past its expires_at: expired, not sent
    HELD = "held"  #: outside its send window: scheduled again for the window's opening


def _write(settings: Settings, write: Callable[[Connection], object]) -> None:
    write_through_disconnects(settings.database, write)


def sent(settings: Settings, message_id: str, wa_message_id: str, sent_at: dt.datetime, session_id: str) -> Outcome:
    """The send went out: ``sending → sent`` (counted on the session)."""
    _write(settings, lambda db: lifecycle.mark_sent(db, message_id, wa_message_id, sent_at, session_id))
    return Outcome.SENT


def retry_later(
    app: Celery, settings: Settings, message_id: str, priority: int, *, session_id: str, error: str, delay: float
) -> Outcome:
    """A transient error: counted on the session, the message ``queued`` again with ``error``, and
    dispatched again after ``delay`` seconds (to any session)."""
    _write(settings, lambda db: lifecycle.session_error(db, session_id, error))
    _write(settings, lambda db: lifecycle.requeue(db, message_id, error=error))
    publish_dispatch(app, message_id, priority, countdown=delay)
    return Outcome.RETRY


def reroute(
    app: Celery,
    settings: Settings,
    message_id: str,
    priority: int,
    *,
    session_id: str,
    session_error: str | None = None,
) -> Outcome:
    """``session_id`` cannot send the message: ``queued`` again and dispatched to another session.

    ``session_error``: the session failed a send it had claimed; the claim's attempt is taken back
    (the session, not the message, was at fault) and the error counted on the session."""
    if session_error is None:
        _write(settings, lambda db: lifecycle.requeue(db, message_id))
    else:
        error = f"session {session_id}: {session_error}"
        _write(settings, lambda db: lifecycle.requeue(db, message_id, error=error, refund_attempt=True))
        _write(settings, lambda db: lifecycle.session_error(db, session_id, session_error))
    publish_dispatch(app, message_id, priority, exclude=[session_id])
    return Outcome.REROUTED


def fail(
    app: Celery,
    settings: Settings,
    message_id: str,
    error: str,
    *,
    email_fallback: bool = True,
    session_error: tuple[str, str] | None = None,
) -> Outcome:
    """``failed`` with ``error``, then the email fallback (``fallback.maybe_queue``), which looks for
    a ``failed`` row. ``email_fallback=False`` for what email must not send (see
    ``wa_tasks.pipeline.fallback``): a message over the recipient's hourly cap. ``session_error``:
    ``(session_id, error)`` to count on the session first."""
    if session_error is not None:
        session_id, reason = session_error
        _write(settings, lambda db: lifecycle.session_error(db, session_id, reason))
    _write(settings, lambda db: lifecycle.mark_failed(db, message_id, error))
    if email_fallback:
        fallback.maybe_queue(app, settings, message_id)
    return Outcome.FAILED


def ambiguous(settings: Settings, message_id: str, detail: str | None = None) -> Outcome:
    """The send may or may not have reached WhatsApp: ``failed`` as an ambiguous send, never resent
    and not sent by email (a receipt may still resolve it, see ``wa_tasks.pipeline.lifecycle``). ``detail``:
    what the transport saw."""
    error = lifecycle.AMBIGUOUS_SEND if detail is None else f"{lifecycle.AMBIGUOUS_SEND} ({detail})"
    _write(settings, lambda db: lifecycle.mark_failed(db, message_id, error))
    return Outcome.AMBIGUOUS


def expire(settings: Settings, message_id: str, session_id: str | None = None) -> Outcome:
    """Past its ``expires_at`` and not sent: ``expired``, never sent late. ``session_id``: the host
    that claimed it and did not send it (``sending`` → ``expired``)."""
    _write(settings, lambda db: lifecycle.expire(db, message_id, utcnow(), session_id))
    return Outcome.EXPIRED


def hold(settings: Settings, message_id: str, until: dt.datetime) -> Outcome:
    """Its send window is closed: ``scheduled`` again until ``until`` (the window's next opening),
    for the releaser; not failed and not sent."""
    _write(settings, lambda db: lifecycle.hold(db, message_id, until))
    return Outcome.HELD


def put_back(settings: Settings, message_id: str, session_id: str) -> Outcome:
    """Nothing was sent after all (the host is stopping, or an error came before the send): the
    claim is taken back (``lifecycle.unclaim``), and the broker's ``deliver`` goes back to the queue."""
    _write(settings, lambda db: lifecycle.unclaim(db, message_id, session_id))
    return Outcome.DEFERRED


def dispatch_queue(priority: int) -> str:
    """Where a ``dispatch`` goes: urgent ones to their own queue (see ``redis_keys.URGENT_QUEUE``)."""
    return redis_keys.URGENT_QUEUE if priority <= priorities.LEVELS["urgent"] else redis_keys.DEFAULT_QUEUE


def publish_dispatch(
    app: Celery, message_id: str, priority: int, *, countdown: float | None = None, exclude: list[str] | None = None
) -> bool:
    """Publish ``dispatch`` for a stored message. False if the broker is unreachable: the row stays
    ``queued`` and the sweeper publishes it once the broker is back, so nothing is lost."""
    kwargs: dict[str, Any] = {"message_id": message_id}
    if exclude:
        kwargs["exclude"] = exclude
    try:
        app.send_task(
            task_names.DISPATCH,
            kwargs=kwargs,
            queue=dispatch_queue(priority),
            priority=priority,
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except OperationalError as exc:
        MessageLog(log, message_id).warning("broker unreachable, the sweeper will dispatch it later: %s", exc)
        return False
    return True
