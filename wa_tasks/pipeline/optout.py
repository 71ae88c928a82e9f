"""Opt-out: a customer who replies an opt-out word (``WA_OPTOUT_WORDS``, default STOP, BERHENTI,
UNSUBSCRIBE) receives no more ``promotion``-category messages; transactional ones still go.

The word must be the whole reply (case-insensitive; surrounding spaces and a trailing ``.`` or
``!`` are ignored), so "stop" opts out but "jangan stop internet saya" does not. The session host
calls :func:`handle_incoming` for every incoming message; sending a promotion template to an
opted-out number is refused when the message is requested (``OptedOut``), and promotions to the
number still waiting when the opt-out arrives (``queued`` or ``routed``, a bulk promotion behind the
pace) are cancelled with it, in the same transaction: the host's claim of a cancelled message fails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Message, MessageStatus, OptOut, Template, utcnow
from models.db import session_scope
from wa_tasks.core.phone import mask, normalize
from wa_tasks.errors import InvalidPhoneNumber, OptedOut
from wa_tasks.pipeline import lifecycle
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: The category that opted-out customers no longer receive.
PROMOTION = "promotion"

#: Error text of a promotion not sent because its recipient opted out.
OPTED_OUT_ERROR = "opted_out: the customer replied STOP; promotions are not sent to them"


def words(settings: Settings) -> frozenset[str]:
    """The configured opt-out words, case-folded."""
    return frozenset(w.strip().casefold() for w in settings.optout_words.split(",") if w.strip())


def matches(text: str, opt_out_words: Iterable[str]) -> bool:
    """Whether the whole message ``text`` is one of the opt-out words."""
    cleaned = text.strip().rstrip(".!").strip().casefold()
    return bool(cleaned) and cleaned in set(opt_out_words)


def handle_incoming(
    settings: Settings, session_id: str, sender: str, text: str, wa_message_id: str | None = None
) -> bool:
    """Record an opt-out if ``text`` is an opt-out word; True if the sender is (now) opted out."""
    if not matches(text, words(settings)):
        return False
    try:
        number = normalize(sender, settings.default_region).number
    except InvalidPhoneNumber as exc:
        log.warning("opt-out from an unusable sender ignored: %s", exc.loggable, extra={"session_id": session_id})
        return False
    cancelled = record(settings, number, keyword=text.strip()[:50], session_id=session_id, wa_message_id=wa_message_id)
    if cancelled is not None:
        log.info(
            "%s opted out of promotions (%r); %d waiting promotion(s) to them cancelled",
            mask(number),
            text.strip()[:50],
            cancelled,
            extra={"session_id": session_id},
        )
    return True


def record(
    settings: Settings,
    number: str,
    *,
    keyword: str,
    session_id: str | None = None,
    wa_message_id: str | None = None,
) -> int | None:
    """Store an opt-out of ``number`` (E.164 digits) and cancel the promotions to it not yet sent;
    returns how many were cancelled, or None if it was already opted out."""
    try:
        with session_scope(settings.database) as db:
            if db.scalar(select(OptOut.id).where(OptOut.number == number)) is not None:
                return None
            db.add(OptOut(number=number, keyword=keyword, session_id=session_id, wa_message_id=wa_message_id))
            return cancel_waiting_promotions(db, number)
    except IntegrityError:  # a concurrent opt-out of the same number won
        return None


def cancel_waiting_promotions(db: Session, number: str) -> int:
    """``scheduled``/``queued``/``routed`` → ``cancelled`` for every promotion to ``number``; returns how many.
    A promotion already claimed by a session host (``sending``) goes out: it may be on the wire."""
    now = utcnow()
    promotions = select(Template.id).where(Template.category == PROMOTION)
    where = [
        Message.status.in_([MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.ROUTED]),
        Message.to_number == number,
        Message.template_id.in_(promotions),
    ]
    return lifecycle.update_many(db, where, MessageStatus.CANCELLED, cancelled_at=now, error_message=OPTED_OUT_ERROR)


def opt_in(settings: Settings, raw_number: str) -> bool:
    """Remove the opt-out of a number (the customer asked to get promotions again); False if none."""
    number = normalize(raw_number, settings.default_region).number
    with session_scope(settings.database) as db:
        return bool(db.execute(delete(OptOut).where(OptOut.number == number)).rowcount)  # type: ignore[attr-defined]


def find(db: Session, number: str) -> OptOut | None:
    return db.scalar(select(OptOut).where(OptOut.number == number))


def opted_out_among(db: Session, numbers: Iterable[str]) -> set[str]:
    """Which of ``numbers`` (E.164 digits) opted out (for bulk sends)."""
    wanted = sorted(set(numbers))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(db.scalars(select(OptOut.number).where(OptOut.number.in_(wanted[start : start + 500]))))
    return found


def refuse_if_opted_out(db: Session, number: str, category: str, template_name: str) -> None:
    """Raise :class:`OptedOut` when a promotion would go to a customer who opted out."""
    if category != PROMOTION:
        return
    opt_out = find(db, number)
    if opt_out is not None:
        when = opt_out.created_at.date().isoformat() if opt_out.created_at else "earlier"
        why = (
            f" opted out of promotions (replied {opt_out.keyword!r} on {when}); "
            f"promotion template {template_name!r} is not sent to them. Transactional templates still are; "
            "if the customer asks for promotions again, remove the opt-out with client.opt_in(number)"
        )
        raise OptedOut(number + why, loggable=mask(number) + why)
