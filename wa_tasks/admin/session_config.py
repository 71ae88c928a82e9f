"""Managing WhatsApp sessions: add, remove, list with live state (used by the CLI and the API).

Session hosts pick changes up on their next heartbeat: no restart needed.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Message, MessageStatus, WhatsAppSession
from models.db import session_scope
from wa_tasks.core import redis_keys, routing, timefmt, transports
from wa_tasks.errors import CommandFailed, InvalidRequest, UnknownSession
from wa_tasks.infra import session_control
from wa_tasks.infra.redis_client import client_for
from wa_tasks.ops import health
from wa_tasks.pipeline import lifecycle, live_state, outcomes
from wa_tasks.settings import Settings

#: Session ids become queue names and Redis keys: keep them plain.
SESSION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Limits of what a session is configured with (the database columns, and sense).
MAX_DEVICE_ID = 100
MAX_PRIORITY = 1_000_000
MAX_PACE_SECONDS = 3600.0
#: No number has used WhatsApp for longer.
WHATSAPP_STARTED = dt.date(2009, 1, 1)


def slug(device_id: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", device_id.strip().lower()).strip("-")


def add(
    settings: Settings,
    *,
    device_id: str,
    priority: int = 999,
    session_id: str | None = None,
    transport: str = "simulated",
    options: dict[str, Any] | None = None,
    pace_seconds: float | None = None,
    number_since: dt.date | None = None,
) -> str:
    """Configure a new session; returns its id. ``number_since``: the day the number started using
    WhatsApp (ban safety warms up a number by its age; by default it counts as new)."""
    if not isinstance(device_id, str) or not device_id.strip():
        raise InvalidRequest("device id is empty")
    if len(device_id.strip()) > MAX_DEVICE_ID or "\x00" in device_id:
        raise InvalidRequest(f"device id must be at most {MAX_DEVICE_ID} characters of text")
    _check_priority(priority)
    session_id = session_id or slug(device_id)
    if not SESSION_ID.match(session_id):
        raise InvalidRequest(f"session id {session_id!r} must be 1-63 characters of a-z, 0-9, '-' or '_'")
    if transport not in transports.AVAILABLE:
        raise InvalidRequest(f"transport {transport!r} is not available; use one of {', '.join(transports.AVAILABLE)}")
    _check_pace(pace_seconds)
    _check_number_since(number_since)
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("options must be an object of transport options")
    try:
        transports.check_options(transport, settings, options)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(str(exc)) from None
    with session_scope(settings.database) as db:
        if db.scalar(select(WhatsAppSession.session_id).where(WhatsAppSession.session_id == session_id)):
            raise InvalidRequest(f"a session {session_id!r} already exists")
    _wait_until_stopped(settings, session_id)
    try:
        with session_scope(settings.database) as db:
            db.add(
                WhatsAppSession(
                    session_id=session_id,
                    device_id=device_id.strip(),
                    priority=priority,
                    transport=transport,
                    transport_options=options or {},
                    pace_seconds=pace_seconds,
                    number_since=number_since,
                )
            )
    except IntegrityError:
        raise InvalidRequest(f"a session {session_id!r} already exists") from None
    return session_id


def _wait_until_stopped(settings: Settings, session_id: str) -> None:
    """Wait until no host runs a session of this id any more. A host notices a removal on its next
    heartbeat: a session added again under its id before that would carry on the old connection
    (one whose device the removal logged out would stay logged out) instead of starting afresh. The
    host clears the live state when it stops the session; a dead host's expires."""
    client = client_for(settings.redis)
    deadline = time.monotonic() + settings.heartbeat_seconds + settings.live_state_ttl_seconds
    try:
        while live_state.read(client, [session_id]) and time.monotonic() < deadline:
            time.sleep(0.1)
    except RedisError:  # no host can run it without Redis either
        return


def _check_priority(priority: object) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
        raise InvalidRequest(f"priority must be a whole number from 0 to {MAX_PRIORITY} (lower = preferred)")


def _check_pace(pace_seconds: object) -> None:
    if pace_seconds is None:
        return
    if (
        isinstance(pace_seconds, bool)
        or not isinstance(pace_seconds, int | float)
        or not 0 <= pace_seconds <= MAX_PACE_SECONDS
    ):
        raise InvalidRequest(f"pace must be from 0 to {MAX_PACE_SECONDS:.0f} seconds")


def _check_number_since(number_since: object) -> None:
    if number_since is None:
        return
    if not isinstance(number_since, dt.date) or isinstance(number_since, dt.datetime):
        raise InvalidRequest("number since must be a date (YYYY-MM-DD): the day the number started using WhatsApp")
    # The latest calendar on Earth (UTC+14): no day later than its today has begun anywhere.
    if number_since > (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date():
        raise InvalidRequest(
            f"number since {number_since.isoformat()} is in the future: give the day the number started using WhatsApp"
        )
    if number_since < WHATSAPP_STARTED:
        raise InvalidRequest(f"number since {number_since.isoformat()} is before WhatsApp existed (2009)")


#: For :func:`update`: leave the pace (or number age) as it is (``None`` means "back to the default").
KEEP = object()


def update(
    settings: Settings,
    session_id: str,
    *,
    priority: int | None = None,
    pace_seconds: object = KEEP,
    number_since: object = KEEP,
) -> None:
    """Change a session's priority (lower = preferred: the way to make another number the primary,
    without scanning a QR again), its pace (seconds between sends; ``None``: WA_PACE_SECONDS) and
    the day its number started using WhatsApp (``None``: the day the session was added).

    The worker routes by the new priority from its next dispatch. A session host running the
    session applies a new pace or number age on its next heartbeat, without reconnecting it."""
    if priority is None and pace_seconds is KEEP and number_since is KEEP:
        raise InvalidRequest("nothing to change: give a priority, a pace or the day the number started")
    if priority is not None:
        _check_priority(priority)
    if pace_seconds is not KEEP:
        _check_pace(pace_seconds)
    if number_since is not KEEP:
        _check_number_since(number_since)
    with session_scope(settings.database) as db:
        row = db.scalar(select(WhatsAppSession).where(WhatsAppSession.session_id == session_id))
        if row is None:
            raise UnknownSession(f"unknown session {session_id!r}")
        if priority is not None:
            row.priority = priority
        if pace_seconds is not KEEP:
            row.pace_seconds = None if pace_seconds is None else float(pace_seconds)  # type: ignore[arg-type]
        if number_since is not KEEP:
            row.number_since = number_since  # type: ignore[assignment]


def remove(settings: Settings, session_id: str) -> int:
    """Delete a session. Messages routed to it and not yet sent go back to dispatch (returned count)."""
    from wa_tasks.infra.celery_app import app_for

    with session_scope(settings.database) as db:
        row = db.scalar(select(WhatsAppSession).where(WhatsAppSession.session_id == session_id))
        if row is None:
            raise UnknownSession(f"unknown session {session_id!r}")
        waiting = db.execute(
            select(Message.id, Message.priority).where(
                Message.session_id == session_id, Message.status == MessageStatus.ROUTED
            )
        ).all()
        moved = [m for m in waiting if lifecycle.requeue(db, m.id, error=f"session {session_id} removed")]
        db.delete(row)
    redis = client_for(settings.redis)
    queue = redis_keys.session_queue(session_id)
    redis.delete(queue, *[f"{queue}:{p}" for p in range(1, 10)])
    for m in moved:
        outcomes.publish_dispatch(app_for(settings), m.id, m.priority, exclude=[session_id])
    return len(moved)


@dataclass(frozen=True)
class Removal:
    """What removing a session did."""

    #: Messages routed to it and not yet sent, moved back to dispatch.
    moved: int
    #: Its device was unlinked from the phone.
    unlinked: bool
    #: Why the device could not be unlinked (the operator then removes it on the phone).
    unlink_error: str | None


def unlink_and_remove(settings: Settings, session_id: str, *, unlink: bool = True, timeout: float = 20.0) -> Removal:
    """Unlink the session's device from the phone through its host (unless ``unlink`` is false), then
    delete the session (:func:`remove`). A device that cannot be unlinked does not stop the removal:
    the reason is returned, for the CLI, the API and the pages to tell the operator."""
    unlinked, error = False, None
    if unlink:
        try:
            session_control.request(settings, session_id, "logout", timeout=timeout)
            unlinked = True
        except CommandFailed as exc:
            error = str(exc)
    return Removal(remove(settings, session_id), unlinked, error)


def listing(settings: Settings) -> list[dict[str, Any]]:
    """Every session with its live status and whether it is the primary, in the fields of
    ``GET /api/whatsapp/sessions``."""
    with session_scope(settings.database) as db:
        rows = (
            db.execute(select(WhatsAppSession).order_by(WhatsAppSession.priority, WhatsAppSession.session_id))
            .scalars()
            .all()
        )
    try:
        states = live_state.read(client_for(settings.redis), [r.session_id for r in rows])
    except Exception:
        states = {}
    now = live_state.now()
    candidates = [
        routing.Candidate(r.session_id, r.priority, r.session_id in states and states[r.session_id].usable(now))
        for r in rows
    ]
    primary = routing.primary(candidates)
    result = []
    for r in rows:
        state = states.get(r.session_id)
        health_now, health_detail = health.shown(
            r.health, r.health_detail, r.health_checked_at, state, settings.health_check_seconds
        )
        result.append(
            {
                "id": r.session_id,
                "deviceId": r.device_id,
                "status": state.status if state else "offline",
                "isPrimary": primary is not None and primary.session_id == r.session_id,
                "priority": r.priority,
                "messageCount": r.message_count,
                "lastActivity": timefmt.iso_or_none(r.last_activity),
                "phoneNumber": r.phone_number,
                "transport": r.transport,
                "host": state.host if state else None,
                "lastStatus": r.status,
                "lastError": r.last_error,
                "health": health_now,
                "healthDetail": health_detail,
                "lastProbeMs": r.last_probe_ms,
                # Ban safety: out of rotation until then (a cap reached, or restricted by WhatsApp).
                "pausedUntil": timefmt.iso_timestamp(state.available_until)
                if state and state.available_until > now
                else None,
            }
        )
    return result


def view(settings: Settings, session_id: str) -> dict[str, Any]:
    """One session as :func:`listing` shows it, plus its pace, number age and transport options."""
    found = next((s for s in listing(settings) if s["id"] == session_id), None)
    if found is None:
        raise UnknownSession(f"unknown session {session_id!r}; list them with `wa-tasks sessions list`")
    with session_scope(settings.database) as db:
        row = db.scalar(select(WhatsAppSession).where(WhatsAppSession.session_id == session_id))
        if row is not None:
            found.update(
                paceSeconds=row.pace_seconds,
                numberSince=row.number_since.isoformat() if row.number_since else None,
                options=dict(row.transport_options or {}),
            )
    return found
