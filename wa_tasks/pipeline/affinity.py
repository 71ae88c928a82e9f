"""The number that knows the customer: for each recipient, the session that last sent to or heard
from them, which routing prefers (``wa_tasks.core.routing.prefer_known``).

WhatsApp trusts per contact, so a customer moved to another of the operator's numbers is a stranger
to it again (see ``wa_tasks/core/routing.py``). Where the answer comes from:

- the messages the sessions sent (``whatsapp_messages`` rows with a ``sent_at``: sent, delivered,
  read, or failed after the send went out), read through the index on ``(to_number, sent_at)``;
- the messages customers sent to a session (``whatsapp_incoming``), through its index on ``sender``;
- what retention kept of the messages it deleted (``whatsapp_known_contacts``, one row per number,
  written by :func:`remember` from ``wa_tasks.ops.retention``), so a customer billed once a month
  still has their number after ``WA_RETENTION_MESSAGES_DAYS`` (15 by default).

The latest of them wins. All are in the database that is the truth for every message, so the
answer survives a Redis restart and needs no write of its own on the send path (a table kept up
to date at every send would cost one more write per message sent; retention writes it once a day).

:func:`known_sessions` answers for a whole batch in one query, so ``wa.dispatch_batch`` pays one
round trip for its 500 messages, not one per message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, literal_column, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from models import IncomingMessage, KnownContact, Message

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


def _statement() -> Select[str, str]:
    """The one query of :func:`known_sessions`: every contact of the numbers ``:numbers`` from the
    three sources, ranked per number by time (built once: building it costs more than running it)."""
    numbers: BindParameter[Any] = bindparam("numbers", expanding=True)
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
    kept = select(
        KnownContact.number.label("number"),
        KnownContact.session_id.label("session_id"),
        KnownContact.last_at.label("at"),
        literal_column("1", Integer).label("kind"),
    ).where(KnownContact.number.in_(numbers))
    contacts = union_all(sent, heard, kept).subquery("contacts")
    ranked = select(
        contacts.c.number,
        contacts.c.session_id,
        func.row_number()
        .over(partition_by=contacts.c.number, order_by=(contacts.c.at.desc(), contacts.c.kind.desc()))
        .label("rank"),
    ).subquery("ranked")
    return select(ranked.c.number, ranked.c.session_id).where(ranked.c.rank == 1)


LATEST_CONTACTS = _statement()


def _query(db: Session, numbers: list[str]) -> dict[str, str]:
    rows = db.execute(LATEST_CONTACTS, {"numbers": numbers})
    return {row.number: row.session_id for row in rows}


def remember(db: Session, sends: Iterable[tuple[str, str | None, dt.datetime | None]]) -> int:
    """Keep, per number, the latest of ``sends`` (``(to_number, session_id, sent_at)`` of messages
    about to be deleted) in ``whatsapp_known_contacts``, where it is newer than what is kept.
    Unsent messages (no session or no ``sent_at``) are skipped. Returns how many rows it wrote."""
    latest: dict[str, tuple[dt.datetime, str]] = {}
    for number, session_id, sent_at in sends:
        if session_id is None or sent_at is None:
            continue
        if number not in latest or sent_at > latest[number][0]:
            latest[number] = (sent_at, session_id)
    if not latest:
        return 0
    kept = {row.number: row for row in db.scalars(select(KnownContact).where(KnownContact.number.in_(list(latest))))}
    written = 0
    for number, (sent_at, session_id) in latest.items():
        row = kept.get(number)
        if row is None:
            db.add(KnownContact(number=number, session_id=session_id, last_at=sent_at))
        elif sent_at > row.last_at:
            row.session_id, row.last_at = session_id, sent_at
        else:
            continue
        written += 1
    return written
