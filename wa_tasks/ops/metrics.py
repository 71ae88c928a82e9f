"""Daily figures, computed from the message rows: sent, delivered, read, failed, the
average delivery time and the active sessions, overall and per session; and the daily roll-up that
stores yesterday's figures in ``whatsapp_daily_metrics`` (beat, ``wa.metrics_rollup``).

A day is a local day in WIB (UTC+7), as operators and the billing calendar count. Each event counts
on the day it happened: a message sent at 23:59 and read at 00:01 counts as sent one day and read
the next. ``failed`` counts messages whose final status is ``failed`` on the day they failed
(refused requests included); ``expired`` those not sent by their ``expires_at``, on the day they
expired. ``avg_delivery_seconds`` is the mean of ``delivered_at - sent_at`` of
the messages delivered that day. ``active_sessions`` is the number of sessions that sent at least
one message that day (the sessions connected at query time would say nothing about a past day;
live connection states are on ``/metrics``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from models import DailyMetric, Message, MessageStatus, utcnow
from models.db import session_scope
from wa_tasks.core.formatting import ZONES
from wa_tasks.errors import InvalidRequest
from wa_tasks.settings import Settings

#: The zone whose midnight starts a day.
DAY_ZONE = ZONES["WIB"]


def today() -> dt.date:
    """The current local day (WIB)."""
    return utcnow().astimezone(DAY_ZONE).date()


def parse_day(day: str | dt.date | None) -> dt.date | None:
    """A date from ``YYYY-MM-DD`` (or a date, or None for today); a clear error otherwise."""
    if day is None or isinstance(day, dt.date):
        return day
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        raise InvalidRequest(f"day must be a date written YYYY-MM-DD, not {day!r}") from None


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of a local day, as aware UTC datetimes."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=DAY_ZONE).astimezone(dt.UTC)
    return start, start + dt.timedelta(days=1)


def _figures() -> dict[str, Any]:
    return {"sent": 0, "delivered": 0, "read": 0, "failed": 0, "expired": 0, "avg_delivery_seconds": None}


def daily(db: Session, day: dt.date, session: str | None = None) -> dict[str, Any]:
    """The figures of one local day, overall and per session (only ``session``'s when given)."""
    start, end = day_bounds(day)

    def within(column: Any) -> Any:
        return and_(column >= start, column < end)

    happened = {
        "sent": within(Message.sent_at),
        "delivered": within(Message.delivered_at),
        "read": within(Message.read_at),
        "failed": and_(within(Message.failed_at), Message.status == MessageStatus.FAILED),
        "expired": and_(within(Message.expired_at), Message.status == MessageStatus.EXPIRED),
    }
    scope = [Message.session_id == session] if session is not None else []
    counts = select(
        Message.session_id,
        *(func.sum(case((condition, 1), else_=0)).label(name) for name, condition in happened.items()),
    ).where(or_(*happened.values()), *scope)
    per_session: dict[str, dict[str, Any]] = defaultdict(_figures)
    overall = _figures()
    for row in db.execute(counts.group_by(Message.session_id)):
        for name in happened:
            value = int(getattr(row, name) or 0)
            overall[name] += value
            if row.session_id is not None:
                per_session[row.session_id][name] += value

    # Averaged here rather than in SQL: interval arithmetic differs between PostgreSQL and SQLite.
    durations: dict[str | None, list[float]] = defaultdict(list)
    delivered = select(Message.session_id, Message.sent_at, Message.delivered_at).where(
        within(Message.delivered_at), Message.sent_at.is_not(None), *scope
    )
    for sid, sent_at, delivered_at in db.execute(delivered):
        if sent_at is None or delivered_at is None:  # excluded by the query; for the type checker
            continue
        durations[sid].append((delivered_at - sent_at).total_seconds())
    everything = [seconds for values in durations.values() for seconds in values]
    overall["avg_delivery_seconds"] = _mean(everything)
    for sid, values in durations.items():
        if sid is not None:
            per_session[sid]["avg_delivery_seconds"] = _mean(values)

    sessions = {sid: per_session[sid] for sid in sorted(per_session)}
    for figures in sessions.values():
        figures["active"] = figures["sent"] > 0
    return {
        "day": day.isoformat(),
        "timezone": "WIB",
        **overall,
        "active_sessions": sum(1 for f in sessions.values() if f["active"]),
        "sessions": sessions,
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def stats(settings: Settings, day: dt.date | None = None, session: str | None = None) -> dict[str, Any]:
    """:func:`daily` for ``day`` (default: today, WIB) on the configured database."""
    with session_scope(settings.database) as db:
        return daily(db, day or today(), session)


def rollup(settings: Settings, day: dt.date | None = None) -> dict[str, Any]:
    """Store the figures of ``day`` (default: yesterday, WIB) in ``whatsapp_daily_metrics``:
    one row for all sessions (``session_id`` NULL) and one per session. Running it again for a
    day replaces that day's rows, in one transaction."""
    day = day or today() - dt.timedelta(days=1)
    now = utcnow()
    with session_scope(settings.database) as db:
        figures = daily(db, day)
        db.execute(delete(DailyMetric).where(DailyMetric.day == day))
        db.add(_row(day, None, figures, figures["active_sessions"], now))
        for sid, per in figures["sessions"].items():
            db.add(_row(day, sid, per, int(per["active"]), now))
    return figures


def _row(day: dt.date, session_id: str | None, figures: dict[str, Any], active: int, now: dt.datetime) -> DailyMetric:
    return DailyMetric(
        day=day,
        session_id=session_id,
        sent=figures["sent"],
        delivered=figures["delivered"],
        read=figures["read"],
        failed=figures["failed"],
        expired=figures["expired"],
        avg_delivery_seconds=figures["avg_delivery_seconds"],
        active_sessions=active,
        computed_at=now,
    )


def stored(settings: Settings, day: dt.date) -> list[dict[str, Any]]:
    """The rolled-up rows of ``day`` (overall first), as dicts."""
    with session_scope(settings.database) as db:
        rows = db.scalars(
            select(DailyMetric)
            .where(DailyMetric.day == day)
            .order_by(DailyMetric.session_id.is_not(None), DailyMetric.session_id)
        ).all()
        return [row.as_dict() for row in rows]
