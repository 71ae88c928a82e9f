"""A message's status transitions, each a conditional UPDATE so that a redelivered task can never
move a message backwards or send it twice.

Delivery semantics, written down where they are enforced:
- Publishing is at-least-once: ``dispatch`` and ``deliver`` tasks may arrive more than once
  (redelivery after a crash, the sweeper, a visibility timeout).
- Sending is at-most-once per claim: a session host sends only after it moved the row
  ``routed → sending`` for its own session (``claim``). A second copy of the task finds the row
  no longer ``routed`` and does nothing.
- An ambiguous send (the host died while the row was ``sending``: WhatsApp may or may not have
  the message) is never resent: it is marked ``failed`` with reason ``ambiguous_send`` so an
  operator can check and retry it by hand. A duplicate to a customer is the worse outcome for
  billing messages that carry amounts and due dates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from models import Message, MessageStatus, WhatsAppSession, utcnow

S = MessageStatus

#: Error text stored on a message whose send was interrupted (see module docstring).
AMBIGUOUS_SEND = "ambiguous_send: the session host stopped during the send; not resent to avoid a duplicate"


def _update(db: Session, message_id: str, where: list[Any], **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = db.execute(update(Message).where(Message.id == message_id, *where).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def touch_dispatched(db: Session, message_id: str) -> None:
    _update(db, message_id, [Message.status == S.QUEUED], dispatched_at=utcnow())


def route(db: Session, message_id: str, session_id: str) -> bool:
    """``queued → routed`` to ``session_id``."""
    return _update(
        db, message_id, [Message.status == S.QUEUED], status=S.ROUTED, session_id=session_id, routed_at=utcnow()
    )


def route_many(db: Session, message_ids: list[str], session_id: str) -> int:
    """``route`` for many messages to one session in one statement; returns how many moved."""
    now = utcnow()
    result = db.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.status == S.QUEUED)
        .values(status=S.ROUTED, session_id=session_id, routed_at=now, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim(db: Session, message_id: str, session_id: str) -> bool:
    """``routed`` (to this session) or ``queued`` → ``sending`` by the host of ``session_id``; counts
    an attempt. ``queued`` is accepted because dispatch publishes ``deliver`` before it commits
    ``routed``: a deliver may arrive first, and a crash between the two must not strand the row."""
    return claim_attempts(db, message_id, session_id) is not None


def claim_attempts(db: Session, message_id: str, session_id: str) -> int | None:
    """``claim`` in one statement that also returns the attempts counted so far (this one
    included); None if the message was not claimable."""
    now = utcnow()
    attempts = db.scalar(
        update(Message)
        .where(
            Message.id == message_id,
            or_(
                and_(Message.status == S.ROUTED, Message.session_id == session_id),
                Message.status == S.QUEUED,
            ),
        )
        .values(status=S.SENDING, session_id=session_id, sending_at=now, attempts=Message.attempts + 1, updated_at=now)
        .returning(Message.attempts)
    )
    return None if attempts is None else int(attempts)


def unclaim(db: Session, message_id: str, session_id: str) -> bool:
    """``sending → routed`` when the host stops before it sent: nothing went out, the attempt is
    taken back."""
    return _update(
        db,
        message_id,
        [Message.status == S.SENDING, Message.session_id == session_id],
        status=S.ROUTED,
        attempts=case((Message.attempts > 0, Message.attempts - 1), else_=0),
    )


def mark_sent(
    db: Session, message_id: str, wa_message_id: str, sent_at: dt.datetime, session_id: str | None = None
) -> bool:
    """``sending → sent``; counts the send on its session (``session_id`` if the caller knows it,
    which saves a query)."""
    done = _update(
        db,
        message_id,
        [Message.status == S.SENDING],
        status=S.SENT,
        wa_message_id=wa_message_id,
        sent_at=sent_at,
        error_message=None,
    )
    if done:
        if session_id is None:
            session_id = db.scalar(select(Message.session_id).where(Message.id == message_id))
        db.execute(
            update(WhatsAppSession)
            .where(WhatsAppSession.session_id == session_id)
            .values(message_count=WhatsAppSession.message_count + 1, last_activity=sent_at, error_count=0)
        )
    return done


def session_error(db: Session, session_id: str, error: str) -> None:
    """Count one more error in a row on a session (a sent message resets it; the health check
    reconnects a session past 5)."""
    db.execute(
        update(WhatsAppSession)
        .where(WhatsAppSession.session_id == session_id)
        .values(error_count=WhatsAppSession.error_count + 1, last_error=error[:500])
    )


def mark_failed(db: Session, message_id: str, error: str) -> bool:
    """Any unsent state → ``failed`` with ``error``."""
    return _update(
        db,
        message_id,
        [Message.status.in_([S.QUEUED, S.ROUTED, S.SENDING])],
        status=S.FAILED,
        error_message=error[:2000],
        failed_at=utcnow(),
    )


def requeue(db: Session, message_id: str, error: str | None = None, *, refund_attempt: bool = False) -> bool:
    """``routed``/``sending`` → ``queued`` (to be dispatched again, possibly elsewhere).

    ``refund_attempt``: the session, not the message, was at fault; the claim's attempt is taken back.
    """
    values: dict[str, Any] = {"status": S.QUEUED, "session_id": None, "dispatched_at": utcnow()}
    if error is not None:
        values["error_message"] = error[:2000]
    if refund_attempt:
        values["attempts"] = case((Message.attempts > 0, Message.attempts - 1), else_=0)
    return _update(db, message_id, [Message.status.in_([S.ROUTED, S.SENDING])], **values)


def cancel(db: Session, message_id: str) -> bool:
    return _update(
        db, message_id, [Message.status.in_([S.QUEUED, S.ROUTED])], status=S.CANCELLED, cancelled_at=utcnow()
    )


def retry_failed(db: Session, message_id: str) -> bool:
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


def apply_receipt(db: Session, wa_message_id: str, kind: str, at: dt.datetime) -> bool:
    """A delivery or read receipt for the message WhatsApp knows as ``wa_message_id``.

    Receipts may arrive out of order or twice; a status never goes backwards.
    """
    if kind == "delivered":
        return _update_by_wa(db, wa_message_id, [Message.status == S.SENT], status=S.DELIVERED, delivered_at=at)
    if kind == "read":
        found = _update_by_wa(db, wa_message_id, [Message.status.in_([S.SENT, S.DELIVERED])], status=S.READ, read_at=at)
        if found:
            # A read implies delivery; keep the earliest known delivery time.
            db.execute(
                update(Message)
                .where(Message.wa_message_id == wa_message_id, Message.delivered_at.is_(None))
                .values(delivered_at=at)
            )
        return found
    raise ValueError(f"unknown receipt kind {kind!r}")


def _update_by_wa(db: Session, wa_message_id: str, where: list[Any], **values: Any) -> bool:
    values["updated_at"] = utcnow()
    result = db.execute(update(Message).where(Message.wa_message_id == wa_message_id, *where).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def has_wa_id(db: Session, wa_message_id: str) -> bool:
    return db.scalar(select(Message.id).where(Message.wa_message_id == wa_message_id).limit(1)) is not None


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def status_view(message: Message) -> dict[str, Any]:
    """The fields of the seed's ``GET /api/whatsapp/message/:id/status`` plus error and attempts."""
    return {
        "id": message.id,
        "status": message.status,
        "sentAt": iso(message.sent_at),
        "deliveredAt": iso(message.delivered_at),
        "readAt": iso(message.read_at),
        "sessionId": message.session_id,
        "error": message.error_message,
        "attempts": message.attempts,
        "to": message.to_number,
        "createdAt": iso(message.created_at),
        "failedAt": iso(message.failed_at),
        "waMessageId": message.wa_message_id,
    }
