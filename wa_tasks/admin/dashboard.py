"""The dashboard's chart data: sends per number per hour by outcome, delivery latency per hour
(p50/p95 of ``delivered_at - sent_at``) and queue depth over time; plus the beat job that samples
queue depths (``wa.sample_depth``) since Redis only knows the depth of now.

The aggregations are pure functions over plain rows (``hourly_outcomes``, ``hourly_latency``,
``depth_series``) so they are tested without a database; ``charts`` reads the rows and calls them.

Depth samples: every 30 s (beat entry ``sample-depth`` in ``celeryconfig``) the worker records the
total depth of every session's queue (all ten priority lists) in one sorted set
(``redis_keys.DEPTH_SAMPLES``, scored by unix time) and trims what is older than ``WINDOW``: at most
2,880 small members.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import or_, select

from models import Message, MessageStatus, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.core import redis_keys, timefmt
from wa_tasks.infra.redis_client import client_for
from wa_tasks.ops.metrics import DAY_ZONE
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

#: How far back the charts look (and how long depth samples are kept).
WINDOW = dt.timedelta(hours=24)
#: Points of the depth chart at most (24 h of 30 s samples are 2,880: merged by 4).
MAX_POINTS = 720
#: The outcomes of a send, in the order the charts stack them.
OUTCOMES = ("sent", "delivered", "read", "failed")
#: Label of messages that never reached a session (refused, or failed before routing).
NO_SESSION = "(none)"


@dataclass(frozen=True)
class SendRow:
    """The columns of one message the send charts need."""

    session_id: str | None
    status: str
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None


def hour_slots(now: dt.datetime, window: dt.timedelta = WINDOW) -> list[dt.datetime]:
    """The starts of the clock hours (UTC) the window covers, oldest first; the last is the current hour."""
    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    count = max(1, math.ceil(window / dt.timedelta(hours=1)))
    return [current - dt.timedelta(hours=count - 1 - i) for i in range(count)]


def _slot(at: dt.datetime, first: dt.datetime, count: int) -> int | None:
    index = int((at - first) // dt.timedelta(hours=1))
    return index if 0 <= index < count else None


def outcome(row: SendRow) -> tuple[str, dt.datetime] | None:
    """What became of a message and the time that counts for it: sent messages by the hour they
    were sent, with their furthest receipt as outcome; failed ones by the hour they failed."""
    if row.status == MessageStatus.FAILED and row.failed_at is not None:
        return "failed", row.failed_at
    if row.sent_at is None:
        return None
    if row.status == MessageStatus.READ:
        return "read", row.sent_at
    if row.status == MessageStatus.DELIVERED or row.delivered_at is not None:
        return "delivered", row.sent_at
    return "sent", row.sent_at


def hourly_outcomes(rows: Iterable[SendRow], slots: Sequence[dt.datetime]) -> dict[str, dict[str, list[int]]]:
    """``{session: {outcome: [count per slot]}}`` for the sessions that have any; messages that
    never reached a session count under ``NO_SESSION``."""
    result: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        found = outcome(row)
        if found is None:
            continue
        kind, at = found
        index = _slot(at, slots[0], len(slots))
        if index is None:
            continue
        series = result.setdefault(row.session_id or NO_SESSION, {k: [0] * len(slots) for k in OUTCOMES})
        series[kind][index] += 1
    return dict(sorted(result.items()))


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile of ``values`` by linear interpolation (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def hourly_latency(
    pairs: Iterable[tuple[dt.datetime, dt.datetime]], slots: Sequence[dt.datetime]
) -> dict[str, list[float | None]]:
    """p50 and p95 of ``delivered_at - sent_at`` (seconds) per hour of delivery; None for an hour
    without deliveries (a gap in the line, not a zero)."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for sent_at, delivered_at in pairs:
        index = _slot(delivered_at, slots[0], len(slots))
        if index is not None:
            buckets[index].append(max(0.0, (delivered_at - sent_at).total_seconds()))
    p50: list[float | None] = []
    p95: list[float | None] = []
    for index in range(len(slots)):
        values = buckets.get(index)
        p50.append(round(percentile(values, 0.5), 3) if values else None)
        p95.append(round(percentile(values, 0.95), 3) if values else None)
    return {"p50": p50, "p95": p95, "count": [len(buckets.get(i, ())) for i in range(len(slots))]}


# Queue depth samples ---------------------------------------------------------------------------


def record_depth(client: redis.Redis, session_ids: Sequence[str], now: float) -> dict[str, int]:
    """Store one sample of every session's queue depth at ``now`` and drop samples older than
    ``WINDOW``; returns the sample."""
    depths = live_state.backlogs(client, [redis_keys.session_queue(s) for s in session_ids])
    sample = {sid: depths[redis_keys.session_queue(sid)] for sid in session_ids}
    pipe = client.pipeline(transaction=True)
    # The time is part of the member so that two equal samples stay two members.
    pipe.zadd(redis_keys.DEPTH_SAMPLES, {json.dumps({"t": round(now, 3), "d": sample}, sort_keys=True): now})
    pipe.zremrangebyscore(redis_keys.DEPTH_SAMPLES, "-inf", f"({now - WINDOW.total_seconds()}")
    pipe.execute()
    return sample


def depth_samples(client: redis.Redis, since: float) -> list[tuple[float, dict[str, int]]]:
    """The stored samples from ``since`` on, oldest first."""
    samples = []
    for raw in client.zrangebyscore(redis_keys.DEPTH_SAMPLES, since, "+inf"):
        item = json.loads(str(raw))
        samples.append((float(item["t"]), {str(k): int(v) for k, v in item["d"].items()}))
    return samples


def downsample(
    samples: Sequence[tuple[float, Mapping[str, int]]], limit: int = MAX_POINTS
) -> list[tuple[float, dict[str, int]]]:
    """At most ``limit`` points: consecutive samples merged into one at the last one's time, with
    each session's highest depth among them (a short spike stays visible)."""
    if len(samples) <= limit:
        return [(t, dict(sample)) for t, sample in samples]
    size = math.ceil(len(samples) / limit)
    merged = []
    for start in range(0, len(samples), size):
        chunk = samples[start : start + size]
        peak: dict[str, int] = {}
        for _, sample in chunk:
            for sid, depth in sample.items():
                peak[sid] = max(depth, peak.get(sid, depth))
        merged.append((chunk[-1][0], peak))
    return merged


def depth_series(samples: Sequence[tuple[float, Mapping[str, int]]]) -> dict[str, Any]:
    """Chart form of the samples: ``{"times": [iso...], "sessions": {id: [depth or None...]}}``; a
    session absent from a sample (not configured then) has None there."""
    sessions = sorted({sid for _, sample in samples for sid in sample})
    return {
        "times": [timefmt.iso(dt.datetime.fromtimestamp(t, dt.UTC)) for t, _ in samples],
        "sessions": {sid: [sample.get(sid) for _, sample in samples] for sid in sessions},
    }


def sample_all(settings: Settings) -> dict[str, int]:
    """The beat job's work: one depth sample of every configured session."""
    with session_scope(settings.database) as db:
        session_ids = list(db.scalars(select(WhatsAppSession.session_id).order_by(WhatsAppSession.session_id)))
    return record_depth(client_for(settings.redis), session_ids, live_state.now())


# Everything the dashboard page shows ------------------------------------------------------------


def charts(settings: Settings, now: dt.datetime | None = None) -> dict[str, Any]:
    """The data of every dashboard chart over the last ``WINDOW``, JSON-ready; labels in WIB."""
    now = now or utcnow()
    slots = hour_slots(now)
    since = slots[0]
    with session_scope(settings.database) as db:
        columns = (Message.session_id, Message.status, Message.sent_at, Message.delivered_at, Message.failed_at)
        recent = or_(Message.sent_at >= since, Message.failed_at >= since)
        rows = [SendRow(*r) for r in db.execute(select(*columns).where(recent))]
        pairs = [
            (sent_at, delivered_at)
            for sent_at, delivered_at in db.execute(
                select(Message.sent_at, Message.delivered_at).where(
                    Message.delivered_at >= since, Message.sent_at.is_not(None)
                )
            )
            if sent_at is not None and delivered_at is not None  # excluded by the query; for mypy
        ]
    try:
        samples = depth_samples(client_for(settings.redis), (now - WINDOW).timestamp())
    except redis.RedisError:
        samples = []
    sends = hourly_outcomes(rows, slots)
    depth = depth_series(downsample(samples))
    depth["labels"] = [_local(t, "%H:%M") for t in depth["times"]]
    return {
        "zone": "WIB",
        "hours": [timefmt.iso(s) for s in slots],
        "labels": [s.astimezone(DAY_ZONE).strftime("%H:00") for s in slots],
        "sends": sends,
        "totals": {k: sum(sum(series[k]) for series in sends.values()) for k in OUTCOMES},
        "latency": hourly_latency(pairs, slots),
        "depth": depth,
    }


def _local(iso: str, pattern: str) -> str:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(DAY_ZONE).strftime(pattern)
