"""A message's status transitions, each a conditional UPDATE so that a redelivered task can never
move a message backwards or send it twice.

Delivery semantics, written down where they are enforced:
- Publishing is at-least-once: ``dispatch`` and ``deliver`` tasks may arrive more than once
  (redelivery after a crash, the sweeper, a visibility timeout).
- Sending is at-most-once per claim: a session host sends only after it moved the row
  ``routed → sending`` for its own session (``claim``). A second copy of the task finds the row
  no longer ``routed`` and does nothing.
- An ambiguous send (the host died while the row was ``sending``: WhatsApp may or may not have
  the message) is never resent: it is marked ``failed`` with reason ``ambiguous_send``. A
  duplicate to a customer is the worse outcome for billing messages that carry amounts and due
  dates.
- What WhatsApp says afterwards resolves it, without a guess: what identifies the send is chosen
  before it and stored on the row in the same write as the claim (``claim_attempts``). The
  simulated transport chooses the WhatsApp message id itself. neonize 0.5.2 cannot (its
  ``send_message`` takes no id; whatsmeow generates one during the send), so the send carries a
  random ``messageSecret`` instead, which whatsmeow stores with the id it generates before the
  message leaves; a receipt for an id no message has is looked up there (``adopt_id``). A delivery
  or read receipt for the send proves the message reached the phone, so it moves the row
  (``sending``, or ``failed`` with ``ambiguous_send``) to ``delivered``/``read``
  (``confirmed_by = 'receipt'``). An id or a secret names one message; one found on two rows
  resolves nothing. Without a receipt the row stays ``failed``; after
  ``WA_AMBIGUOUS_RECEIPT_WINDOW_SECONDS`` the status views say "no receipt seen", for an operator
  to decide (the recipient's phone may also just be off).

Every change to a status billing acts on (``sent``, ``delivered``, ``read``, ``failed``,
``cancelled``, ``expired``) records its status event in the same transaction
(``webhooks.record``), for the status callbacks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, case, func, or_, select, update

from models import PENDING, Message, MessageStatus, WhatsAppSession, utcnow
from models.db import Db
from wa_tasks.core.timefmt import iso_or_none
from wa_tasks.pipeline import webhooks
from wa_tasks.settings import get_settings

log = logging.getLogger(__name__)

S = MessageStatus

#: Error text stored on a message whose send was interrupted (see module docstring).
AMBIGUOUS_SEND = "ambiguous_send: the session host stopped during the send; not resent to avoid a duplicate"
#: How every ambiguous send's error begins (a transport may add what it saw).
AMBIGUOUS_PREFIX = AMBIGUOUS_SEND.split(":", 1)[0]
#: ``confirmed_by`` of a send that a receipt proved (see module docstring).
BY_RECEIPT = "receipt"
#: What the status views say of an ambiguous send, within the receipt window and after it.
AWAITING_RECEIPT = "waiting for a receipt"
NO_RECEIPT_SEEN = "no receipt seen"
RESOLVED_BY_RECEIPT = "resolved by its receipt"

#: A send whose outcome is unknown: in flight (or its host died), or found interrupted.
_UNCONFIRMED = or_(
    Message.status == S.SENDING,
    and_(Message.status == S.FAILED, Message.error_message.startswith(AMBIGUOUS_PREFIX)),
)


# The writes of every send (a claim, then ``sent``), built once as plain table statements: the host
# makes them at its sending rate, and building an ORM-enabled UPDATE for each (its construction, its
# cache key, the ORM's bulk-update machinery) cost half of the host's CPU per message.
_messages = cast(Table, Message.__table__)
_sessions = cast(Table, WhatsAppSession.__table__)

#: ``claim_attempts``: the claim, returning the attempts counted so far.
_CLAIM = (
    update(_messages)
    .where(
        _messages.c.id == bindparam("message_id"),
        or_(
            and_(_messages.c.status == S.ROUTED, _messages.c.session_id == bindparam("session_id")),
            _messages.c.status == S.QUEUED,
        ),
    )
    .values(
        status=S.SENDING,
        session_id=bindparam("session_id"),
        sending_at=bindparam("now"),
        attempts=_messages.c.attempts + 1,
        wa_message_id=bindparam("wa_message_id"),
        send_secret=bindparam("send_secret"),
        updated_at=bindparam("now"),
    )
    .returning(_messages.c.attempts)
)

#: ``mark_sent``: ``sending → sent``, returning what the rest of the write needs.
_MARK_SENT = (
    update(_messages)
    .where(_messages.c.id == bindparam("message_id"), _messages.c.status == S.SENDING)
    .values(
        status=S.SENT,
        wa_message_id=bindparam("wa_message_id"),
        sent_at=bindparam("sent_at"),
        error_message=None,
        updated_at=bindparam("now"),
    )
    .returning(_messages.c.session_id, _messages.c.callback_url)
)

#: ``mark_sent``: one more send on its session, and its errors in a row reset.
_COUNT_SEND = (
    update(_sessions)
    .where(_sessions.c.session_id == bindparam("counted_session"))
    .values(message_count=_sessions.c.message_count + 1, last_activity=bindparam("sent_at"), error_count=0)
)

#: ``mark_sent`` on PostgreSQL: both writes in one statement (a data-modifying CTE counts the send
#: on the session the message was sent from), a round trip fewer a message.
_SENT = _MARK_SENT.cte("sent")
_MARK_SENT_AND_COUNT = select(_SENT.c.session_id, _SENT.c.callback_url).add_cte(
    update(_sessions)
    .where(_sessions.c.session_id == select(_SENT.c.session_id).scalar_subquery())
    .values(
        message_count=_sessions.c.message_count + 1,
        last_activity=bindparam("sent_at"),
        error_count=0,
        # A column's update default is not applied inside a CTE.
        updated_at=bindparam("now"),
    )
    .cte("counted")
)


def _postgresql(db: Db) -> bool:
    bind = db if isinstance(db, Connection) else db.get_bind()
    return bind.dialect.name == "postgresql"


def _update(db: Db, message_id: str, where: list[Any], **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = db.execute(update(Message).where(Message.id == message_id, *where).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def touch_dispatched(db: Db, message_id: str) -> None:
    _update(db, message_id, [Message.status == S.QUEUED], dispatched_at=utcnow())


def route(db: Db, message_id: str, session_id: str) -> bool:
    """``queued → routed`` to ``session_id``."""
    return _update(
        db, message_id, [Message.status == S.QUEUED], status=S.ROUTED, session_id=session_id, routed_at=utcnow()
    )


def route_many(db: Db, message_ids: list[str], session_id: str) -> int:
    """``route`` for many messages to one session in one statement; returns how many moved."""
    now = utcnow()
    result = db.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.status == S.QUEUED)
        .values(status=S.ROUTED, session_id=session_id, routed_at=now, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim(db: Db, message_id: str, session_id: str) -> bool:
    """``routed`` (to this session) or ``queued`` → ``sending`` by the host of ``session_id``; counts
    an attempt. ``queued`` is accepted because dispatch publishes ``deliver`` before it commits
    ``routed``: a deliver may arrive first, and a crash between the two must not strand the row."""
    return claim_attempts(db, message_id, session_id) is not None


def claim_attempts(
    db: Db,
    message_id: str,
    session_id: str,
    *,
    wa_message_id: str | None = None,
    send_secret: str | None = None,
) -> int | None:
    """``claim`` in one statement that also returns the attempts counted so far (this one
    included); None if the message was not claimable. ``wa_message_id``/``send_secret``: what the
    send will carry to identify it, when the transport chose it beforehand; stored with the claim
    so that a receipt can resolve the send if its host dies during it (None clears an earlier
    claim's)."""
    now = utcnow()
    attempts = db.execute(
        _CLAIM,
        {
            "message_id": message_id,
            "session_id": session_id,
            "now": now,
            "wa_message_id": wa_message_id,
            "send_secret": send_secret,
        },
    ).scalar()
    return None if attempts is None else int(attempts)


def unclaim(db: Db, message_id: str, session_id: str) -> bool:
    """``sending → routed`` when the host stops before it sent: nothing went out, the attempt is
    taken back."""
    return _update(
        db,
        message_id,
        [Message.status == S.SENDING, Message.session_id == session_id],
        status=S.ROUTED,
        attempts=case((Message.attempts > 0, Message.attempts - 1), else_=0),
        wa_message_id=None,
        send_secret=None,
    )


def mark_sent(db: Db, message_id: str, wa_message_id: str, sent_at: dt.datetime, session_id: str | None = None) -> bool:
    """``sending → sent``; counts the send on its session (``session_id`` if the caller knows it,
    which saves a query). A receipt that overtook this write already resolved the row: the
    acknowledgement then only gives it its true ``sent_at``."""
    params = {"message_id": message_id, "wa_message_id": wa_message_id, "sent_at": sent_at, "now": utcnow()}
    counted = _postgresql(db)
    row = db.execute(_MARK_SENT_AND_COUNT if counted else _MARK_SENT, params).first()
    if row is None:
        return _update(
            db,
            message_id,
            [Message.confirmed_by == BY_RECEIPT, Message.status.in_([S.DELIVERED, S.READ])],
            sent_at=sent_at,
            confirmed_by=None,
        )
    if row.callback_url or webhooks.installation_targets(get_settings()):
        webhooks.record(db, [message_id], S.SENT, at=sent_at)
    if not counted:
        db.execute(_COUNT_SEND, {"counted_session": session_id or row.session_id, "sent_at": sent_at})
    return True


def session_error(db: Db, session_id: str, error: str) -> None:
    """Count one more error in a row on a session (a sent message resets it; the health check
    reconnects a session past 5)."""
    db.execute(
        update(WhatsAppSession)
        .where(WhatsAppSession.session_id == session_id)
        .values(error_count=WhatsAppSession.error_count + 1, last_error=error[:500])
    )


def mark_failed(db: Db, message_id: str, error: str) -> bool:
    """Any unsent state → ``failed`` with ``error``."""
    done = _update(
        db,
        message_id,
        [Message.status.in_([S.QUEUED, S.ROUTED, S.SENDING])],
        status=S.FAILED,
        error_message=error[:2000],
        failed_at=utcnow(),
    )
    if done:
        webhooks.record(db, [message_id], webhooks.failed_status(error, AMBIGUOUS_PREFIX))
    return done


def requeue(db: Db, message_id: str, error: str | None = None, *, refund_attempt: bool = False) -> bool:
    """``routed``/``sending`` → ``queued`` (to be dispatched again, possibly elsewhere).

    ``refund_attempt``: the session, not the message, was at fault; the claim's attempt is taken back.
    """
    values: dict[str, Any] = {"status": S.QUEUED, "session_id": None, "dispatched_at": utcnow()}
    if error is not None:
        values["error_message"] = error[:2000]
    if refund_attempt:
        values["attempts"] = case((Message.attempts > 0, Message.attempts - 1), else_=0)
    return _update(db, message_id, [Message.status.in_([S.ROUTED, S.SENDING])], **values)


def cancel(db: Db, message_id: str) -> bool:
    done = _update(db, message_id, [Message.status.in_(PENDING)], status=S.CANCELLED, cancelled_at=utcnow())
    if done:
        webhooks.record(db, [message_id], S.CANCELLED)
    return done


def update_many(db: Db, where: list[Any], status: MessageStatus, **values: Any) -> int:
    """Move every message matching ``where`` to ``status`` (with ``values``) in one statement and
    record their status events; returns how many moved. For the bulk cancels and expiries."""
    values.setdefault("updated_at", utcnow())
    ids = db.scalars(
        update(Message).where(*where).values(status=status, **values).returning(Message.id),
        execution_options={"synchronize_session": False},
    ).all()
    webhooks.record(db, ids, status)
    return len(ids)


def cancel_pending(db: Db, ref: str, categories: Collection[str] | None = None) -> int:
    """Cancel the messages about ``ref`` still waiting (``scheduled``, ``queued``, ``routed``; never
    one already ``sending``), only those of ``categories`` when given; returns how many."""
    where = [Message.ref == ref, Message.status.in_(PENDING)]
    if categories is not None:
        where.append(Message.category.in_(list(categories)))
    return update_many(db, where, S.CANCELLED, cancelled_at=utcnow())


def expire(db: Db, message_id: str, now: dt.datetime, session_id: str | None = None) -> bool:
    """A message past its ``expires_at`` and not sent → ``expired``: from ``scheduled``, ``queued``
    or ``routed``, and from ``sending`` only by the host of ``session_id`` that claimed it and has
    not sent it."""
    waiting: Any = Message.status.in_(PENDING)
    if session_id is not None:
        waiting = or_(waiting, and_(Message.status == S.SENDING, Message.session_id == session_id))
    done = _update(
        db,
        message_id,
        [waiting, Message.expires_at.is_not(None), Message.expires_at <= now],
        status=S.EXPIRED,
        expired_at=now,
    )
    if done:
        webhooks.record(db, [message_id], S.EXPIRED, at=now)
    return done


def expire_due(db: Db, now: dt.datetime, limit: int) -> int:
    """:func:`expire` for up to ``limit`` waiting messages past their ``expires_at``; returns how many."""
    ids = db.scalars(
        select(Message.id).where(Message.status.in_(PENDING), Message.expires_at <= now).limit(limit)
    ).all()
    if not ids:
        return 0
    where = [Message.id.in_(ids), Message.status.in_(PENDING), Message.expires_at <= now]
    return update_many(db, where, S.EXPIRED, expired_at=now, updated_at=now)


def hold(db: Db, message_id: str, until: dt.datetime) -> bool:
    """``queued``/``routed`` → ``scheduled`` until ``until`` (its send window is closed): not failed,
    not sent; the releaser queues it again when the window opens."""
    return _update(
        db,
        message_id,
        [Message.status.in_([S.QUEUED, S.ROUTED])],
        status=S.SCHEDULED,
        send_at=until,
        session_id=None,
    )


def retry_failed(db: Db, message_id: str) -> bool:
    """``failed → queued`` for another round of attempts (an operator's retry)."""
    return _update(
        db,
        message_id,
        [Message.status == S.FAILED],
        status=S.QUEUED,
        attempts=0,
        error_message=None,
        failed_at=None,
        session_id=None,
        dispatched_at=utcnow(),
    )


def apply_receipt(db: Db, wa_message_id: str, kind: str, at: dt.datetime) -> bool:
    """A delivery or read receipt for the message WhatsApp knows as ``wa_message_id``.

    Receipts may arrive out of order or twice; a status never goes backwards. A receipt for a send
    whose outcome is unknown resolves it (see module docstring).
    """
    if kind == "delivered":
        found = _update_by_wa(db, wa_message_id, [Message.status == S.SENT], S.DELIVERED, at, delivered_at=at)
    elif kind == "read":
        found = _update_by_wa(db, wa_message_id, [Message.status.in_([S.SENT, S.DELIVERED])], S.READ, at, read_at=at)
        if found:
            # A read implies delivery; keep the earliest known delivery time.
            db.execute(
                update(Message)
                .where(Message.wa_message_id == wa_message_id, Message.delivered_at.is_(None))
                .values(delivered_at=at)
            )
    else:
        raise ValueError(f"unknown receipt kind {kind!r}")
    return found or _resolve_by_receipt(db, wa_message_id, kind, at)


def _resolve_by_receipt(db: Db, wa_message_id: str, kind: str, at: dt.datetime) -> bool:
    """An unconfirmed send (``sending``, or ``failed`` as ambiguous) whose id the receipt carries
    reached the phone: ``delivered`` or ``read``, counted on its session. Only when the id names
    exactly one message: two rows with one id would make the receipt a guess."""
    rows = db.execute(
        select(Message.id, Message.session_id).where(Message.wa_message_id == wa_message_id).limit(2)
    ).all()
    if len(rows) != 1:
        if rows:
            log.warning(
                "receipt for WhatsApp id %s, which names more than one message: nothing resolved", wa_message_id
            )
        return False
    message_id, session_id = rows[0]
    values: dict[str, Any] = {
        "status": S.DELIVERED if kind == "delivered" else S.READ,
        "delivered_at": at,
        "sent_at": func.coalesce(Message.sending_at, at),
        "error_message": None,
        "failed_at": None,
        "confirmed_by": BY_RECEIPT,
    }
    if kind == "read":
        values["read_at"] = at
    if not _update(db, message_id, [_UNCONFIRMED], **values):
        return False
    webhooks.record(db, [message_id], values["status"], at=at)
    db.execute(
        update(WhatsAppSession)
        .where(WhatsAppSession.session_id == session_id)
        .values(message_count=WhatsAppSession.message_count + 1)
    )
    log.info(
        "message %s resolved by its %s receipt: it reached the phone",
        message_id,
        kind,
        extra={"message_id": message_id},
    )
    return True


def adopt_id(db: Db, secrets: list[str], wa_message_id: str) -> bool:
    """A receipt came for ``wa_message_id``, which no message has; the transport's store says the
    send of that id carried one of ``secrets`` (see ``Message.send_secret``). The one unconfirmed
    send that carried it takes the id, so that the receipt resolves it. Nothing if no message, or
    more than one, carried it."""
    if not secrets:
        return False
    rows = db.scalars(select(Message.id).where(Message.send_secret.in_(secrets)).limit(2)).all()
    if len(rows) != 1:
        if rows:
            log.warning("the send of WhatsApp id %s matches more than one message: nothing resolved", wa_message_id)
        return False
    return _update(db, rows[0], [_UNCONFIRMED, Message.wa_message_id.is_(None)], wa_message_id=wa_message_id)


def _update_by_wa(
    db: Db, wa_message_id: str, where: list[Any], status: MessageStatus, at: dt.datetime, **values: Any
) -> bool:
    values["updated_at"] = utcnow()
    ids = db.scalars(
        update(Message)
        .where(Message.wa_message_id == wa_message_id, *where)
        .values(status=status, **values)
        .returning(Message.id),
        execution_options={"synchronize_session": False},
    ).all()
    webhooks.record(db, ids, status, at=at)
    return bool(ids)


def has_wa_id(db: Db, wa_message_id: str) -> bool:
    return db.scalar(select(Message.id).where(Message.wa_message_id == wa_message_id).limit(1)) is not None


def ambiguity(message: Message, window_seconds: float | None = None, now: dt.datetime | None = None) -> str | None:
    """What to say of an ambiguous send: waiting for a receipt (within ``window_seconds`` of its
    failure; default ``WA_AMBIGUOUS_RECEIPT_WINDOW_SECONDS``), no receipt seen (after), or resolved
    by its receipt. None for any other message."""
    if message.confirmed_by == BY_RECEIPT:
        return RESOLVED_BY_RECEIPT
    if message.status != S.FAILED or not (message.error_message or "").startswith(AMBIGUOUS_PREFIX):
        return None
    if window_seconds is None:
        window_seconds = get_settings().ambiguous_receipt_window_seconds
    failed_at = message.failed_at or message.updated_at
    if failed_at is not None and (now or utcnow()) - failed_at < dt.timedelta(seconds=window_seconds):
        return AWAITING_RECEIPT
    return NO_RECEIPT_SEEN


def status_view(message: Message, window_seconds: float | None = None) -> dict[str, Any]:
    """A message's status as billing systems poll it (``GET /api/whatsapp/message/{id}/status``),
    with its error and attempts and what is known of an ambiguous send (``ambiguousSend``, see
    :func:`ambiguity`)."""
    return {
        "id": message.id,
        "status": message.status,
        "sentAt": iso_or_none(message.sent_at),
        "deliveredAt": iso_or_none(message.delivered_at),
        "readAt": iso_or_none(message.read_at),
        "sessionId": message.session_id,
        "error": message.error_message,
        "attempts": message.attempts,
        "to": message.to_number,
        "createdAt": iso_or_none(message.created_at),
        "failedAt": iso_or_none(message.failed_at),
        "waMessageId": message.wa_message_id,
        "ambiguousSend": ambiguity(message, window_seconds),
        "sendAt": iso_or_none(message.send_at),
        "expiresAt": iso_or_none(message.expires_at),
        "expiredAt": iso_or_none(message.expired_at),
        "noticeKey": message.notice_key,
        "ref": message.ref,
    }
