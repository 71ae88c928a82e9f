"""Notices that know their invoice: an invoice's reminder ladder as scheduled messages.

``schedule_reminders`` turns a ladder (``wa_tasks/core/ladder.py``: ``H-3``, ``H-1``, ``H0``,
``H+1`` at 09:00 by default) into one scheduled message per step, each with the step's notice key
(``invoice:INV-7:reminder:H-3``) and the invoice number as its ``ref``. It is idempotent: billing's
daily cron may call it every day for every open invoice; a step whose notice key exists is kept
(whatever became of it), a step whose time is past is skipped, and a changed due date moves the
steps still ``scheduled`` to their new time with the new due date in their text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, update

from models import Message, MessageStatus, utcnow
from models.db import session_scope
from wa_tasks.core import ladder
from wa_tasks.errors import InvalidSchedule
from wa_tasks.pipeline import lifecycle, schedule, submit
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: A grace that keeps every step of a ladder in its plan, however far in the past.
EVERY_STEP = dt.timedelta(days=4 * ladder.MAX_DAYS)


def schedule_reminders(
    settings: Settings,
    invoice_number: str,
    to: str,
    due_date: dt.date | dt.datetime | str,
    *,
    ladder_steps: Iterable[str] | str = ladder.DEFAULT_LADDER,
    at: str | dt.time = ladder.DEFAULT_AT,
    data: Mapping[str, Any] | None = None,
    templates: Mapping[str, str] | None = None,
    tz: str | None = None,
    priority: str | int = "normal",
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Schedule the invoice's ladder; returns ``{step: message id}`` for every step that has a
    message (new, kept or moved). Bad input (a step that does not parse, an unknown zone, a
    template or data the templates cannot render, a bad number) raises before anything is stored."""
    if data is not None and not isinstance(data, Mapping):
        raise InvalidSchedule(f"data must be a mapping of template variables, got {type(data).__name__}")
    now = now or utcnow()
    zone = tz if tz is not None else settings.timezone
    schedule.check_zone(zone)
    # Every step, past ones included (a moved due date may put a waiting step in the past).
    every = ladder.ladder_plan(
        invoice_number, due_date, ladder_steps, now=now, at=at, tz=zone, templates=templates, grace=EVERY_STEP
    )
    due_day = ladder.parse_due_date(due_date, ladder.windows.zone(zone))
    # The ladder's due date is the one the texts show: a moved due date moves the text too.
    merged = {**(data or {}), "invoice_number": invoice_number, "due_date": due_day.isoformat()}
    # Everything is rendered and checked first: a bad step, number or template stores nothing.
    prepared: list[tuple[ladder.PlannedStep, submit.Prepared]] = []
    with session_scope(settings.database) as db:
        for step in every:
            request = SendRequest(to, template=step.template, data=dict(merged), priority=priority)
            base = submit.prepare(db, settings, request)
            timing = schedule.Timing(send_at=step.send_at, notice_key=step.notice_key, ref=invoice_number, tz=tz)
            prepared.append((step, dataclasses.replace(base, timing=timing)))
    ids: dict[str, str] = {}
    for step, item in prepared:
        label = step.step.label
        past = step.send_at < now
        with session_scope(settings.database) as db:
            existing = db.execute(
                select(Message.id, Message.status, Message.send_at).where(Message.notice_key == step.notice_key)
            ).first()
            if existing is not None:
                ids[label] = existing.id
                if existing.status == MessageStatus.SCHEDULED and existing.send_at != step.send_at:
                    _move(db, existing.id, item, cancel=past)
                continue
        if past:
            continue  # never sent at once: a ladder created late skips its past steps
        message_id, _created = submit.persist(settings, item)
        ids[label] = message_id
    return ids


def _move(db: Any, message_id: str, item: submit.Prepared, *, cancel: bool) -> None:
    """A scheduled step whose due date changed: to its new time and text, or cancelled when its new
    time is already past."""
    now = utcnow()
    where = [Message.id == message_id, Message.status == MessageStatus.SCHEDULED]
    if cancel:
        lifecycle.update_many(db, where, MessageStatus.CANCELLED, cancelled_at=now)
        log.info("reminder %s cancelled: its new time is past", message_id)
        return
    db.execute(
        update(Message)
        .where(*where)
        .values(send_at=item.timing.send_at, content=item.content, data=item.data, updated_at=now)
    )
    log.info("reminder %s moved to %s", message_id, item.timing.send_at)
