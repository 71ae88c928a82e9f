"""Scheduled messages: when a message is due, until when it may go, and the releaser that queues it.

The database is the truth for what is scheduled. A message with a later ``send_at`` is stored
``scheduled`` (its id returned, its errors raised at once, like any send) and nothing of it is in
the broker: no Celery ETA or countdown, which on the Redis broker would sit in a worker's memory and
be delivered again after the visibility timeout. The releaser (``wa.release``, run by beat every
``WA_RELEASE_INTERVAL_SECONDS``) moves the due ones to ``queued`` and publishes their dispatch:

- in bounded batches read from the ``(status, send_at)`` index, each batch one transaction whose
  UPDATE moves only rows still ``scheduled`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
  serialises writers): two releasers never queue a message twice, and a restart loses nothing, as
  a row queued but not yet published is published again by the sweeper (``dispatched_at``);
- at the pace the usable sessions can send: at most ``WA_RELEASE_AHEAD_SECONDS`` of their sending
  waits ``queued`` or ``routed``, so a large backlog does not sit in broker queues for hours and
  pass its expiry there; urgent messages are released whatever the backlog;
- one releaser at a time (a Redis lock), beside beat's own claim of each run.

A message not sent by its ``expires_at`` becomes ``expired`` and is never sent late: the releaser
expires the waiting ones, and dispatch and the session host's claim check again.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import Message, MessageStatus, Template, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.core import priorities, redis_keys, task_names, windows
from wa_tasks.errors import InvalidSchedule
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import lifecycle, live_state
from wa_tasks.pipeline.outcomes import publish_dispatch
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

S = MessageStatus

#: Longest notice key and ref (the column sizes).
MAX_NOTICE_KEY = 200
MAX_REF = 100


@dataclass(frozen=True)
class Timing:
    """When a message goes and what it is about, validated: aware UTC times (``send_at`` None: at
    once), the notice key, the ref and the customer's time zone."""

    send_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    notice_key: str | None = None
    ref: str | None = None
    tz: str | None = None

    @property
    def scheduled(self) -> bool:
        return self.send_at is not None


def parse_time(value: object, what: str) -> dt.datetime | None:
    """An aware datetime from a datetime, an ISO 8601 string with its offset, or a unix time
    (seconds); None for None. A naive time is refused: a billing server in WIB and a worker in UTC
    would read it seven hours apart."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidSchedule(f"{what} must be a datetime with a time zone, got {value!r}")
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(float(value), dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidSchedule(f"{what} is not a usable unix time: {value!r}") from None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidSchedule(
                f"{what} must be an ISO 8601 time with its offset (2026-12-03T09:00:00+07:00), got {value!r}"
            ) from None
    if not isinstance(value, dt.datetime):
        raise InvalidSchedule(f"{what} must be a datetime with a time zone, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidSchedule(
            f"{what} is a naive datetime ({value.isoformat()}); give its time zone, e.g. "
            "datetime(2026, 12, 3, 9, 0, tzinfo=ZoneInfo('Asia/Jakarta')) or '2026-12-03T09:00:00+07:00'"
        )
    return value.astimezone(dt.UTC)


def check_zone(tz: object, what: str = "tz") -> str | None:
    """A time zone name (IANA, such as ``Asia/Makassar``, or ``WIB``/``WITA``/``WIT``), or an error naming ``what``."""
    if tz is None:
        return None
    windows.zone(tz, field=what)
    return str(tz).strip()


def _check_text(value: object, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSchedule(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise InvalidSchedule(f"{what} is {len(value)} characters; the limit is {limit}: {value[:40]!r}...")
    if "\x00" in value:
        raise InvalidSchedule(f"{what} contains a NUL character (\\u0000); remove it")
    return value


def check(
    *,
    send_at: object = None,
    expires_at: object = None,
    notice_key: object = None,
    ref: object = None,
    tz: object = None,
    grace_seconds: float = 300.0,
    now: dt.datetime | None = None,
) -> Timing:
    """Validate a send's timing; raise :class:`InvalidSchedule` naming the field.

    A ``send_at`` up to ``grace_seconds`` in the past (a clock a little behind, a slow caller) sends
    at once; further in the past it is refused rather than sent late. ``expires_at`` must come
    after ``send_at`` (after now for a message sent at once)."""
    now = now or utcnow()
    due = parse_time(send_at, "send_at")
    expiry = parse_time(expires_at, "expires_at")
    if due is not None and math.isfinite(grace_seconds) and due < now - dt.timedelta(seconds=grace_seconds):
        raise InvalidSchedule(
            f"send_at {due.isoformat()} is in the past (now {now.isoformat(timespec='seconds')}); "
            f"a send_at at most {grace_seconds:g} s ago sends at once, an older one is refused"
        )
    if due is not None and due <= now:
        due = None
    if expiry is not None:
        start = due or now
        if expiry <= start:
            field_name = "send_at" if due is not None else "now"
            raise InvalidSchedule(
                f"expires_at {expiry.isoformat()} is not after {field_name} {start.isoformat(timespec='seconds')}; "
                "the message would expire before it could be sent"
            )
    return Timing(
        send_at=due,
        expires_at=expiry,
        notice_key=_check_text(notice_key, "notice_key", MAX_NOTICE_KEY),
        ref=_check_text(ref, "ref", MAX_REF),
        tz=check_zone(tz),
    )


# Send windows ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _windows(promotion: str, reminder: str, transactional: str, timezone: str) -> windows.Windows:
    return windows.Windows.of(promotion=promotion, reminder=reminder, transactional=transactional, timezone=timezone)


def installation_windows(settings: Settings) -> windows.Windows:
    """The send windows of ``settings`` (``WA_TIMEZONE``, ``WA_WINDOW_*``), parsed once."""
    return _windows(
        settings.window_promotion, settings.window_reminder, settings.window_transactional, settings.timezone
    )


def window_hold(
    settings: Settings,
    category: str | None,
    tz: str | None,
    priority: int,
    now: dt.datetime,
    *,
    override: str | None = None,
) -> dt.datetime | None:
    """When a message of template ``category`` that is outside its send window may go (the
    window's next opening, in ``tz`` or the installation's zone); None when it may go now.
    ``override``: the template's own window (``Template.send_window``), used instead of its
    category's. Urgent messages and plain texts (no category) are never held."""
    if priority <= priorities.LEVELS["urgent"] or category is None or category not in windows.CATEGORY_CLASS:
        return None
    chosen = installation_windows(settings)
    try:
        if windows.is_open(category, now, windows=chosen, tz=tz, override=override):
            return None
        return windows.next_opening(category, now, windows=chosen, tz=tz, override=override)
    except InvalidSchedule as exc:  # a zone this machine no longer knows: send rather than hold for ever
        log.warning("send window not applied (%s)", exc)
        return None


def template_windows(db: Session, template_ids: Iterable[int]) -> dict[int, str]:
    """The templates among ``template_ids`` that have a send window of their own, and that window."""
    ids = sorted(set(template_ids))
    if not ids:
        return {}
    rows = db.execute(
        select(Template.id, Template.send_window).where(Template.id.in_(ids), Template.send_window.is_not(None))
    )
    return {row.id: row.send_window for row in rows}


# The releaser -------------------------------------------------------------------------------------


@dataclass
class Released:
    """What one run of the releaser did."""

    released: int = 0
    expired: int = 0
    held: int = 0  #: due but outside their send window: scheduled again for its opening
    budget: int | None = None  #: how many non-urgent messages the sessions' pace allowed (None: no limit)
    ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"released": self.released, "expired": self.expired, "held": self.held, "budget": self.budget}


def ahead_budget(settings: Settings, db: Session, now: dt.datetime) -> int | None:
    """How many more non-urgent messages may be queued now: the usable sessions' sends in
    ``WA_RELEASE_AHEAD_SECONDS`` less what already waits ``queued`` or ``routed``. None: no limit
    (the setting is 0, or a session sends without a pace)."""
    if settings.release_ahead_seconds <= 0:
        return None
    rows = db.execute(select(WhatsAppSession.session_id, WhatsAppSession.pace_seconds)).all()
    states = live_state.read(client_for(settings.redis), [r.session_id for r in rows])
    clock = live_state.now()
    rate = 0.0
    for row in rows:
        state = states.get(row.session_id)
        if state is None or not state.usable(clock):
            continue
        pace = row.pace_seconds if row.pace_seconds is not None else settings.pace_seconds
        if pace <= 0:
            return None
        rate += 1.0 / pace
    waiting = db.scalar(select(func.count()).select_from(Message).where(Message.status.in_([S.QUEUED, S.ROUTED])))
    return max(0, int(rate * settings.release_ahead_seconds) - int(waiting or 0))


def _claim_due(db: Session, now: dt.datetime, limit: int, *, urgent_only: bool) -> list[Any]:
    """Move up to ``limit`` due ``scheduled`` messages to ``queued`` in one statement; returns their
    rows (id, priority, category, tz). Only rows still ``scheduled`` move: a row another releaser
    took is skipped (PostgreSQL: locked ones are skipped, and the UPDATE re-checks the status of
    any it waited for)."""
    where = [Message.status == S.SCHEDULED, Message.send_at <= now]
    if urgent_only:
        where.append(Message.priority <= priorities.LEVELS["urgent"])
    # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT ... SKIP LOCKED): PostgreSQL may
    # run such a subquery more than once, each run skipping what the last one locked, and move
    # more rows than the limit.
    ids = db.scalars(
        select(Message.id)
        .where(*where)
        .order_by(Message.send_at, Message.priority)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        return []
    return list(
        db.execute(
            update(Message)
            .where(Message.id.in_(ids), Message.status == S.SCHEDULED)
            .values(status=S.QUEUED, dispatched_at=now, updated_at=now)
            .returning(
                Message.id, Message.priority, Message.category, Message.tz, Message.expires_at, Message.template_id
            ),
            execution_options={"synchronize_session": False},
        ).all()
    )


def _hold(db: Session, rows: list[Any], now: dt.datetime, hold: Callable[..., dt.datetime | None]) -> list[Any]:
    """Put back ``scheduled`` (until their window opens) the rows outside their send window, in the
    releasing transaction; returns the rows to publish. A template's own window (one read for the
    batch) comes before its category's."""
    overrides = template_windows(db, {row.template_id for row in rows if row.template_id is not None})
    keep = []
    for row in rows:
        until = hold(row.category, row.tz, row.priority, now, override=overrides.get(row.template_id))
        if until is None:
            keep.append(row)
            continue
        db.execute(
            update(Message)
            .where(Message.id == row.id, Message.status == S.QUEUED)
            .values(status=S.SCHEDULED, send_at=until, dispatched_at=None, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    return keep


def _publish(app: Celery, rows: list[Any]) -> None:
    """Dispatch the released rows: urgent ones one by one on their own queue, the rest in batches
    (``wa.dispatch_batch``) per priority. A publish that fails leaves its rows ``queued`` for the sweeper."""
    by_priority: dict[int, list[str]] = {}
    for row in rows:
        if row.priority <= priorities.LEVELS["urgent"]:
            publish_dispatch(app, row.id, row.priority)
        else:
            by_priority.setdefault(row.priority, []).append(row.id)
    for priority, ids in sorted(by_priority.items()):
        for start in range(0, len(ids), DISPATCH_BATCH):
            try:
                app.send_task(
                    task_names.DISPATCH_BATCH,
                    kwargs={"message_ids": ids[start : start + DISPATCH_BATCH]},
                    priority=priority,
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
                )
            except OperationalError as exc:
                log.warning("broker unreachable, the sweeper will dispatch the released messages later: %s", exc)
                return


#: Message ids per ``wa.dispatch_batch`` (as a bulk send's).
DISPATCH_BATCH = 500
#: Longest one run of the releaser keeps releasing (seconds): the next run continues.
RUN_SECONDS = 20.0
#: How long the releaser's lock lives if its holder dies (seconds).
LOCK_SECONDS = 60


def release(
    settings: Settings,
    app: Celery,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    hold: Callable[..., dt.datetime | None] | None = None,
) -> Released:
    """One run of the releaser (see the module docstring): expire what is past its expiry, then
    queue and dispatch the due messages, batch by batch, within the sessions' pace budget."""
    hold = hold or functools.partial(window_hold, settings)
    redis = client_for(settings.redis)
    token = uuid.uuid4().hex
    result = Released()
    if not redis.set(redis_keys.RELEASE_LOCK, token, nx=True, ex=LOCK_SECONDS):
        log.debug("releaser already running elsewhere")
        return result
    try:
        started = time.monotonic()
        batch = settings.release_batch
        with session_scope(settings.database) as db:
            while True:
                expired = lifecycle.expire_due(db, now(), batch)
                result.expired += expired
                if expired < batch:
                    break
        # Urgent messages first and whatever the backlog: they are never held behind a bulk.
        while time.monotonic() - started < RUN_SECONDS:
            with session_scope(settings.database) as db:
                rows = _claim_due(db, now(), batch, urgent_only=True)
                publish = _hold(db, rows, now(), hold)
            result.held += len(rows) - len(publish)
            _record(app, result, publish)
            if len(rows) < batch:
                break
        while time.monotonic() - started < RUN_SECONDS:
            with session_scope(settings.database) as db:
                budget = ahead_budget(settings, db, now())
                if result.budget is None:
                    result.budget = budget
                size = batch if budget is None else min(batch, budget)
                if size <= 0:
                    break
                rows = _claim_due(db, now(), size, urgent_only=False)
                publish = _hold(db, rows, now(), hold)
            result.held += len(rows) - len(publish)
            _record(app, result, publish)
            if len(rows) < size:
                break
    finally:
        # Release the lock only if it is still this run's (it may have expired and been taken).
        redis.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
            1,
            redis_keys.RELEASE_LOCK,
            token,
        )
    if result.released:
        try:
            redis.incrby(redis_keys.RELEASED_TOTAL, result.released)
        except RedisError as exc:  # a figure for monitoring: the release itself is done
            log.warning("released count not recorded: %s", exc)
    if result.released or result.expired or result.held:
        log.info(
            "releaser: %d queued, %d expired, %d held for their send window",
            result.released,
            result.expired,
            result.held,
        )
    return result


def _record(app: Celery, result: Released, rows: list[Any]) -> None:
    if rows:
        _publish(app, rows)
    result.released += len(rows)
    result.ids.extend(row.id for row in rows)


def cancel_pending(settings: Settings, ref: object, categories: object = None) -> int:
    """Cancel ``ref``'s waiting messages (``lifecycle.cancel_pending``) after checking the input:
    ``ref`` a non-empty string, ``categories`` None or a list of category names."""
    checked = _check_text(ref, "ref", MAX_REF)
    if checked is None:
        raise InvalidSchedule("ref is required: the ref whose waiting notices to cancel, e.g. 'INV-7'")
    names: list[str] | None = None
    if categories is not None:
        if isinstance(categories, str | bytes) or not isinstance(categories, Iterable):
            raise InvalidSchedule(
                f"categories must be a list of category names such as ['reminder'], got {categories!r}"
            )
        names = list(categories)
        if not names or not all(isinstance(name, str) and name.strip() for name in names):
            raise InvalidSchedule(f"categories must be a non-empty list of category names, got {categories!r}")
    with session_scope(settings.database) as db:
        count = lifecycle.cancel_pending(db, checked, names)
    if count:
        log.info("%d waiting message(s) about %s cancelled", count, checked)
    return count
