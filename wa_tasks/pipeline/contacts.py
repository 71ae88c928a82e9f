"""Contact sync: which customers' numbers are on WhatsApp, asked in batches through a
connected session and cached with the answer's age in ``whatsapp_contacts``.

- ``Client.sync_contacts(numbers)`` checks the billing code's customer list; answers younger than
  ``WA_CONTACT_MAX_AGE_DAYS`` are taken from the cache, the rest asked of WhatsApp.
- ``wa.contacts_refresh`` (beat, daily) asks again for every answer that got too old.
- ``wa_tasks.pipeline.submit`` fails a send fast when the cache says, freshly, that the number is not on
  WhatsApp (the message is stored ``failed`` with ``not_on_whatsapp`` and goes to the email
  fallback); a stale or missing answer never blocks a send.

The question goes to the session host owning a connected session (``check_numbers`` command),
which asks WhatsApp with ``transport.is_on_whatsapp``: one query per batch, no message sent.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import WhatsAppContact, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.core.phone import normalize
from wa_tasks.errors import CommandFailed
from wa_tasks.infra import session_control
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Numbers per ``is_on_whatsapp`` query (one usync query each).
BATCH_SIZE = 50
#: The most stale numbers one refresh run checks (the next day's run takes the rest).
REFRESH_LIMIT = 5000
#: Reason stored on a message refused because its number is not on WhatsApp.
NOT_ON_WHATSAPP = "not_on_whatsapp"


def batches(items: Sequence[str], size: int = BATCH_SIZE) -> Iterator[list[str]]:
    """``items`` in consecutive chunks of at most ``size``."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def max_age(settings: Settings) -> dt.timedelta:
    return dt.timedelta(days=settings.contact_max_age_days)


def known_absent(db: Session, settings: Settings, number: str) -> WhatsAppContact | None:
    """The cache entry saying, freshly, that ``number`` (E.164 digits) is not on WhatsApp."""
    return db.scalar(
        select(WhatsAppContact).where(
            WhatsAppContact.number == number,
            WhatsAppContact.on_whatsapp.is_(False),
            WhatsAppContact.checked_at >= utcnow() - max_age(settings),
        )
    )


def cached(settings: Settings, numbers: Iterable[str], *, fresh_only: bool = True) -> dict[str, bool]:
    """What the cache knows of ``numbers`` (E.164 digits); only fresh answers unless told otherwise."""
    wanted = list(numbers)
    found: dict[str, bool] = {}
    with session_scope(settings.database) as db:
        for chunk in batches(wanted, 500):
            query = select(WhatsAppContact.number, WhatsAppContact.on_whatsapp).where(WhatsAppContact.number.in_(chunk))
            if fresh_only:
                query = query.where(WhatsAppContact.checked_at >= utcnow() - max_age(settings))
            found.update({row.number: row.on_whatsapp for row in db.execute(query)})
    return found


def sync(
    settings: Settings, numbers: Iterable[str], *, refresh: bool = False, batch_size: int = BATCH_SIZE
) -> dict[str, bool]:
    """Whether each of ``numbers`` (any formatting; invalid ones raise InvalidPhoneNumber) is on
    WhatsApp, keyed by E.164 digits. Fresh cached answers are used unless ``refresh``; the others
    are asked of WhatsApp in batches and cached. A number WhatsApp gave no answer for is left out.
    Raises ``CommandFailed`` when no session can ask."""
    wanted = list(dict.fromkeys(normalize(n, settings.default_region).number for n in numbers))
    answers = {} if refresh else cached(settings, wanted)
    missing = [n for n in wanted if n not in answers]
    if missing:
        answers.update(check(settings, missing, batch_size=batch_size))
    return {n: answers[n] for n in wanted if n in answers}


def check(settings: Settings, numbers: Sequence[str], *, batch_size: int = BATCH_SIZE) -> dict[str, bool]:
    """Ask WhatsApp about ``numbers`` (E.164 digits), ``batch_size`` per query, and cache the answers."""
    sessions = usable_sessions(settings)
    if not sessions:
        raise CommandFailed(
            "no connected session to ask WhatsApp which numbers it knows: connect one (`wa-tasks sessions list`)"
        )
    answers: dict[str, bool] = {}
    for chunk in batches(numbers, batch_size):
        last: Exception | None = None
        for session_id in sessions:  # the next session if one cannot answer (disconnected meanwhile)
            try:
                reply = session_control.request(settings, session_id, "check_numbers", {"numbers": chunk})
            except CommandFailed as exc:
                last = exc
                continue
            got = {str(k): bool(v) for k, v in (reply.get("on_whatsapp") or {}).items() if str(k) in chunk}
            store(settings, got, session_id)
            answers.update(got)
            break
        else:
            assert last is not None
            raise last
    return answers


def usable_sessions(settings: Settings) -> list[str]:
    """Connected sessions, the primary (lowest priority number) first."""
    with session_scope(settings.database) as db:
        rows = db.execute(select(WhatsAppSession.session_id).order_by(WhatsAppSession.priority)).all()
    ids = [r.session_id for r in rows]
    states = live_state.read(client_for(settings.redis), ids)
    return [s for s in ids if s in states and states[s].connected]


def store(settings: Settings, answers: dict[str, bool], session_id: str | None) -> None:
    """Insert or update the cache entries of ``answers``, stamped now."""
    if not answers:
        return
    for attempt in range(2):  # a concurrent sync may insert the same number first: update it then
        try:
            with session_scope(settings.database) as db:
                now = utcnow()
                existing = {
                    c.number: c
                    for c in db.scalars(select(WhatsAppContact).where(WhatsAppContact.number.in_(list(answers))))
                }
                for number, on_whatsapp in answers.items():
                    row = existing.get(number)
                    if row is None:
                        db.add(
                            WhatsAppContact(
                                number=number, on_whatsapp=on_whatsapp, checked_at=now, session_id=session_id
                            )
                        )
                    else:
                        row.on_whatsapp, row.checked_at, row.session_id = on_whatsapp, now, session_id
            return
        except IntegrityError:
            if attempt:
                raise


def refresh(settings: Settings, *, limit: int = REFRESH_LIMIT, batch_size: int = BATCH_SIZE) -> int:
    """Check again the cached numbers whose answer is older than ``WA_CONTACT_MAX_AGE_DAYS``,
    oldest first; returns how many were refreshed."""
    with session_scope(settings.database) as db:
        stale = list(
            db.scalars(
                select(WhatsAppContact.number)
                .where(WhatsAppContact.checked_at < utcnow() - max_age(settings))
                .order_by(WhatsAppContact.checked_at)
                .limit(limit)
            )
        )
    if not stale:
        return 0
    answers = check(settings, stale, batch_size=batch_size)
    log.info("contact sync: refreshed %d of %d stale number(s)", len(answers), len(stale))
    return len(answers)
