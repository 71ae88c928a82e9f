"""The session health check, run by beat every 30 seconds.

For every configured session it records in the session row: ``offline`` (no host reports it: a
stale heartbeat or a dead host), ``slow`` (a probe round trip over 5 s), ``failing`` (more than 5
errors in a row: the owning host is asked to reconnect it), ``idle`` (connected but nothing sent
for 24 h) or ``ok``. The probe asks WhatsApp whether the session's own number is on WhatsApp,
so it messages nobody and looks up no stranger.

Until a session has been checked in its current status, it shows as ``pending`` (:func:`shown`).
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from models import WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.infra import session_control
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: A probe round trip slower than this is reported.
SLOW_SECONDS = 5.0
#: More errors in a row than this, and the session is reconnected.
MAX_ERRORS = 5
#: Connected without sending for this long is reported.
IDLE_AFTER = dt.timedelta(hours=24)
#: No host reports the session.
OFFLINE = "offline"
#: Shown until a session is checked for the first time, or again once a host reports it.
PENDING = "pending"
#: How long one probe may take before it counts as an error.
PROBE_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Result:
    session_id: str
    health: str
    detail: str
    probe_ms: float | None = None


def check_all(settings: Settings) -> list[Result]:
    """Check every session, store the results on the rows, reconnect failing ones."""
    with session_scope(settings.database) as db:
        rows = db.execute(
            select(WhatsAppSession.session_id, WhatsAppSession.error_count, WhatsAppSession.last_activity)
        ).all()
    states = live_state.read(client_for(settings.redis), [r.session_id for r in rows])
    connected = [r.session_id for r in rows if r.session_id in states and states[r.session_id].connected]
    probes: dict[str, Any] = {}
    if connected:
        with ThreadPoolExecutor(max_workers=min(16, len(connected))) as pool:
            futures = {
                sid: pool.submit(session_control.request, settings, sid, "probe", None, PROBE_TIMEOUT_SECONDS)
                for sid in connected
            }
            for sid, future in futures.items():
                try:
                    probes[sid] = future.result()
                except Exception as exc:
                    probes[sid] = exc
    now = utcnow()
    results = []
    for r in rows:
        result = _judge(
            r.session_id, states.get(r.session_id), probes.get(r.session_id), r.error_count, r.last_activity, now
        )
        results.append(result)
        if result.health == "failing":
            _reconnect(settings, r.session_id)
    with session_scope(settings.database) as db:
        for result in results:
            values: dict[str, Any] = {
                "health": result.health,
                "health_detail": result.detail[:500],
                "health_checked_at": now,
            }
            probe = probes.get(result.session_id)
            if isinstance(probe, Exception):
                values["error_count"] = WhatsAppSession.error_count + 1  # one more error in a row
            elif probe is not None:
                values["last_probe_ms"] = result.probe_ms
                if result.health != "failing":
                    values["error_count"] = 0  # a good round trip ends the streak
            db.execute(update(WhatsAppSession).where(WhatsAppSession.session_id == result.session_id).values(**values))
    return results


def _judge(
    session_id: str,
    state: live_state.LiveState | None,
    probe: Any,
    errors: int,
    last_activity: dt.datetime | None,
    now: dt.datetime,
) -> Result:
    if state is None:
        return Result(session_id, OFFLINE, "no session host reports it (stale heartbeat, or no host running)")
    if not state.connected:
        return Result(session_id, OFFLINE, f"{state.status} on {state.host}")
    if isinstance(probe, Exception):
        if errors + 1 > MAX_ERRORS:
            return Result(session_id, "failing", f"{errors + 1} errors in a row, reconnecting; last: {probe}")
        return Result(session_id, "failing" if errors >= MAX_ERRORS else "ok", f"probe failed: {probe}")
    latency = float(probe.get("latency_ms", 0.0)) if isinstance(probe, dict) else None
    if errors > MAX_ERRORS:
        return Result(session_id, "failing", f"{errors} send errors in a row, reconnecting", latency)
    if latency is not None and latency > SLOW_SECONDS * 1000:
        return Result(session_id, "slow", f"probe took {latency / 1000:.1f}s (over {SLOW_SECONDS:.0f}s)", latency)
    if last_activity is not None and now - last_activity > IDLE_AFTER:
        hours = (now - last_activity).total_seconds() / 3600
        return Result(session_id, "idle", f"nothing sent for {hours:.0f} hours", latency)
    return Result(session_id, "ok", f"probe {latency:.0f} ms" if latency is not None else "ok", latency)


def shown(
    health: str | None,
    detail: str | None,
    checked_at: dt.datetime | None,
    state: live_state.LiveState | None,
    every_seconds: float,
) -> tuple[str, str | None]:
    """The health to show for a session now (pages, CLI, API). A session never checked has none, and
    an "offline" found before a host began reporting the session (checked while the host was still
    starting, say) describes a host that is there now: both are ``pending`` until the next check.
    Any other result stays shown across a status change: a ``failing`` session is reconnected by
    its host, and the operator should still see why."""
    if health is None:
        return PENDING, f"not checked yet; the health check runs every {every_seconds:.0f} s"
    if health == OFFLINE and state is not None and checked_at is not None and checked_at.timestamp() < state.since:
        return PENDING, f"the first check since it became {state.status} is due within {every_seconds:.0f} s"
    return health, detail


def _reconnect(settings: Settings, session_id: str) -> None:
    try:
        session_control.request(settings, session_id, "reconnect", timeout=PROBE_TIMEOUT_SECONDS)
        log.warning("session %s failing: reconnect requested", session_id, extra={"session_id": session_id})
    except Exception as exc:
        log.error(
            "session %s failing and could not be reconnected: %s", session_id, exc, extra={"session_id": session_id}
        )
