"""The number that knows the customer: for each recipient, the session that last sent to or heard
from them, which routing prefers (``wa_tasks.core.routing.prefer_known``).

WhatsApp trusts per contact, so a customer moved to another of the operator's numbers is a stranger
to it again (see ``wa_tasks/core/routing.py``). Where the answer comes from:

- the messages the sessions sent (``whatsapp_messages`` rows with a ``sent_at``: sent, delivered,
  read, or failed after the send went out), read through the index on ``(to_number, sent_at)``;
- the messages customers sent to a session (``whatsapp_incoming``), through its index on ``sender``.

The latest of either wins. Both are in the database that is the truth for every message, so the
answer survives a Redis restart and needs no write of its own on the send path (a separate table
kept up to date would cost one more write per message sent). It remembers as far back as
retention keeps messages (``WA_RETENTION_MESSAGES_DAYS``); a customer not messaged for longer is
routed as a new one.

:func:`known_sessions` answers for a whole batch in one query, so ``wa.dispatch_batch`` pays one
round trip for its 500 messages, not one per message.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Integer, func, literal_column, select, union_all
from sqlalchemy.orm import Session

from models import IncomingMessage, Message

#: Numbers per ``IN`` list: a bulk batch (``wa_tasks.pipeline.bulk``) fits in one.
CHUNK = 500


def known_sessions(db: Session, numbers: Iterable[str]) -> dict[str, str]:
    """For each of ``numbers`` (E.164 digits) that a session has sent to or heard from, that
    session's id (the latest contact wins). Numbers no session knows are absent. One query per
    :data:`CHUNK` distinct numbers."""
    wanted = sorted({n for n in numbers if n})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        found.update(_query(db, wanted[start : start + CHUNK]))
    return found


def known_session(db: Session, number: str) -> str | None:
    """The session that last sent to or heard from ``number``, or None."""
    return known_sessions(db, [number]).get(number)


def _query(db: Session, numbers: list[str]) -> dict[str, str]:
    sent = select(
        Message.to_number.label("number"),
        Message.session_id.label("session_id"),
        Message.sent_at.label("at"),
        # Ties (a message sent and a reply received in the same instant) go to the send.
        literal_column("1", Integer).label("kind"),
    ).where(Message.to_number.in_(numbers), Message.sent_at.is_not(None), Message.session_id.is_not(None))
    heard = select(
        IncomingMessage.sender.label("number"),
        IncomingMessage.session_id.label("session_id"),
        IncomingMessage.received_at.label("at"),
        literal_column("0", Integer).label("kind"),
    ).where(IncomingMessage.sender.in_(numbers))
    contacts = union_all(sent, heard).subquery("contacts")
    ranked = select(
        contacts.c.number,
        contacts.c.session_id,
        func.row_number()
        .over(partition_by=contacts.c.number, order_by=(contacts.c.at.desc(), contacts.c.kind.desc()))
        .label("rank"),
    ).subquery("ranked")
    rows = db.execute(select(ranked.c.number, ranked.c.session_id).where(ranked.c.rank == 1))
    return {row.number: row.session_id for row in rows}
