"""Daily metrics on SQLite and PostgreSQL: the daily figures equal counts made here from the rows
inserted, the roll-up stores and replaces a day, and the web process serves ``/metrics`` and
``/api/whatsapp/metrics`` over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from models import DailyMetric, Message, WhatsAppSession, utcnow
from models.db import session_scope
from support.stack import settings_env
from support.web import running_web
from wa_tasks.client import Client
from wa_tasks.core import redis_keys
from wa_tasks.errors import InvalidRequest
from wa_tasks.infra.redis_client import client_for
from wa_tasks.ops import metrics
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

WIB = dt.timezone(dt.timedelta(hours=7))
DAY = dt.date(2026, 11, 20)
SESSIONS = ("wa-1", "wa-2")


@dataclass
class Row:
    id: str
    session_id: str | None
    status: str
    sent_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    read_at: dt.datetime | None = None
    failed_at: dt.datetime | None = None


def _local_day(moment: dt.datetime | None) -> dt.date | None:
    return moment.astimezone(WIB).date() if moment is not None else None


def _rows() -> list[Row]:
    """Messages with events spread over the day before, the day and the day after (WIB), and on
    the edges of the day."""
    rng = random.Random(7)
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=WIB) - dt.timedelta(days=1)
    rows = []
    for i in range(120):
        sid = rng.choice([*SESSIONS, None])
        at = start + dt.timedelta(seconds=rng.uniform(0, 3 * 86400))
        kind = rng.random()
        if kind < 0.2 or sid is None:
            rows.append(Row(f"msg_{i:03d}", sid, "failed", failed_at=at))
            continue
        row = Row(f"msg_{i:03d}", sid, "sent", sent_at=at)
        if kind < 0.3:  # failed once, then sent: not a failure
            row.failed_at = at - dt.timedelta(seconds=30)
        if kind > 0.4:
            row.status, row.delivered_at = "delivered", at + dt.timedelta(seconds=rng.uniform(0.5, 900))
        if kind > 0.7 and row.delivered_at is not None:
            row.status, row.read_at = "read", row.delivered_at + dt.timedelta(seconds=rng.uniform(1, 7200))
        rows.append(row)
    edge = dt.datetime.combine(DAY, dt.time(), tzinfo=WIB)
    rows.append(Row("msg_first_instant", "wa-1", "sent", sent_at=edge))
    rows.append(Row("msg_last_instant", "wa-1", "sent", sent_at=edge + dt.timedelta(days=1, microseconds=-1)))
    rows.append(Row("msg_next_day", "wa-2", "sent", sent_at=edge + dt.timedelta(days=1)))
    return rows


def _expected(rows: list[Row], only: str | None = None) -> dict[str, Any]:
    """The figures of DAY, counted in Python from the rows."""

    def figures(selected: list[Row]) -> dict[str, Any]:
        delays = [
            (r.delivered_at - r.sent_at).total_seconds()
            for r in selected
            if r.delivered_at is not None and r.sent_at is not None and _local_day(r.delivered_at) == DAY
        ]
        return {
            "sent": sum(_local_day(r.sent_at) == DAY for r in selected),
            "delivered": sum(_local_day(r.delivered_at) == DAY for r in selected),
            "read": sum(_local_day(r.read_at) == DAY for r in selected),
            "failed": sum(r.status == "failed" and _local_day(r.failed_at) == DAY for r in selected),
            "avg": sum(delays) / len(delays) if delays else None,
        }

    chosen = [r for r in rows if only is None or r.session_id == only]
    per = {sid: figures([r for r in chosen if r.session_id == sid]) for sid in SESSIONS if only in (None, sid)}
    return {"all": figures(chosen), "sessions": {sid: f for sid, f in per.items() if any(f.values())}}


def _insert(database: str, rows: list[Row]) -> None:
    with session_scope(database) as db:
        db.add_all(WhatsAppSession(session_id=sid, device_id=sid.upper()) for sid in SESSIONS)
        db.flush()
        for r in rows:
            created = min(t for t in (r.sent_at, r.failed_at) if t is not None) - dt.timedelta(seconds=5)
            db.add(
                Message(
                    id=r.id,
                    session_id=r.session_id,
                    to_number="6281234567890",
                    content="Tagihan",
                    status=r.status,
                    created_at=created,
                    sent_at=r.sent_at,
                    delivered_at=r.delivered_at,
                    read_at=r.read_at,
                    failed_at=r.failed_at,
                )
            )


def _assert_figures(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name in ("sent", "delivered", "read", "failed"):
        assert got[name] == want[name], name
    if want["avg"] is None:
        assert got["avg_delivery_seconds"] is None
    else:
        assert got["avg_delivery_seconds"] == pytest.approx(want["avg"], abs=0.001)


@pytest.fixture
def db_settings(database: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database, data_dir=tmp_path / "var")


def test_daily_figures_equal_counts_of_the_rows(db_settings: Settings) -> None:
    # Given messages whose events fall before, on, at the edges of and after the day
    rows = _rows()
    _insert(db_settings.database, rows)
    want = _expected(rows)

    # When the day's figures are asked for through the thin client
    got = Client(db_settings).stats("2026-11-20")

    # Then every figure equals the count made from the rows, overall and per session
    assert got["day"] == "2026-11-20"
    _assert_figures(got, want["all"])
    assert set(got["sessions"]) == set(want["sessions"])
    for sid, figures in want["sessions"].items():
        _assert_figures(got["sessions"][sid], figures)
    assert got["active_sessions"] == sum(1 for f in want["sessions"].values() if f["sent"] > 0)
    assert want["all"]["sent"] > 0 and want["all"]["failed"] > 0 and want["all"]["read"] > 0  # a real test

    # And one session's figures alone
    only = Client(db_settings).stats(DAY, session="wa-2")
    _assert_figures(only, _expected(rows, "wa-2")["all"])
    assert set(only["sessions"]) <= {"wa-2"}

    # And a day with nothing is all zeros, a bad day a clear error
    empty = Client(db_settings).stats("2020-01-01")
    assert (empty["sent"], empty["failed"], empty["avg_delivery_seconds"], empty["sessions"]) == (0, 0, None, {})
    with pytest.raises(InvalidRequest, match="YYYY-MM-DD"):
        Client(db_settings).stats("20-11-2026")


def test_the_rollup_stores_a_day_and_a_rerun_replaces_it(db_settings: Settings) -> None:
    rows = _rows()
    _insert(db_settings.database, rows)
    want = _expected(rows)

    # When the roll-up runs twice for the day
    metrics.rollup(db_settings, DAY)
    metrics.rollup(db_settings, DAY)

    # Then the day has one row for all sessions and one per session, with the figures
    stored = metrics.stored(db_settings, DAY)
    assert [r["session_id"] for r in stored] == [None, *sorted(want["sessions"])]
    assert (stored[0]["sent"], stored[0]["delivered"], stored[0]["read"], stored[0]["failed"]) == (
        want["all"]["sent"],
        want["all"]["delivered"],
        want["all"]["read"],
        want["all"]["failed"],
    )

    # When a message of that day changes and the roll-up runs again, the row is replaced
    changed = next(r for r in rows if r.status == "sent" and _local_day(r.sent_at) == DAY)
    with session_scope(db_settings.database) as db:
        db.execute(update(Message).where(Message.id == changed.id).values(status="failed", sent_at=None))
    metrics.rollup(db_settings, DAY)
    again = metrics.stored(db_settings, DAY)
    assert len(again) == len(stored)
    assert again[0]["sent"] == stored[0]["sent"] - 1
    with session_scope(db_settings.database) as db:
        assert len(db.scalars(select(DailyMetric).where(DailyMetric.day == DAY)).all()) == len(stored)


def test_stats_on_the_command_line(db_settings: Settings) -> None:
    rows = _rows()
    _insert(db_settings.database, rows)
    env = settings_env(db_settings)
    out = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "stats", "--day", "2026-11-20", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    _assert_figures(json.loads(out.stdout), _expected(rows)["all"])
    table = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "stats", "--day", "2026-11-20"], env=env, capture_output=True, text=True
    )
    assert table.returncode == 0 and "active sessions" in table.stdout and "wa-1" in table.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "stats", "--day", "yesterday"], env=env, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "YYYY-MM-DD" in bad.stderr


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """``wa-tasks web`` as a child process on a free port, with an API key."""
    with running_web(settings, tmp_path / "logs") as base:
        yield base


def _series(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_prometheus_metrics_over_http(settings: Settings, web: str) -> None:
    # Given two sessions (one connected), queued broker messages and messages sent just now
    started = utcnow()
    redis = client_for(settings.redis)
    with session_scope(settings.database) as db:
        db.add_all(WhatsAppSession(session_id=sid, device_id=sid.upper()) for sid in SESSIONS)
        db.flush()
        sent_at = started - dt.timedelta(seconds=1)
        for i, latency in enumerate((0.3, 4.0, 40.0)):
            db.add(
                Message(
                    id=f"msg_lat_{i}",
                    session_id="wa-1",
                    to_number="6281234567890",
                    status="sent",
                    created_at=sent_at - dt.timedelta(seconds=latency),
                    sent_at=sent_at,
                )
            )
        db.add(Message(id="msg_waiting", to_number="6281234567890", status="queued"))
    now = time.time()
    live_state.report_host(redis, "host-a", 60)
    live_state.publish(redis, live_state.LiveState("wa-1", "connected", "host-a", now, now))
    redis.rpush(redis_keys.session_queue("wa-1"), "a", "b")
    redis.rpush(f"{redis_keys.session_queue('wa-1')}:2", "c")
    time.sleep(1.5)  # the collector observes rows once their commit has surely happened

    # When Prometheus scrapes (with the key as a bearer token; without it the answer is 401)
    assert httpx.get(f"{web}/metrics", timeout=10).status_code == 401
    auth = {"Authorization": "Bearer k-test"}
    first = httpx.get(f"{web}/metrics", headers=auth, timeout=10)
    assert first.status_code == 200, first.text
    series = _series(first.text)

    # Then it sees the messages by status, the queue depths, the session states and the latencies
    assert series['wa_messages{status="sent"}'] == 3
    assert series['wa_messages{status="queued"}'] == 1
    assert series['wa_messages{status="failed"}'] == 0
    assert series['wa_queue_depth{priority="0",session="wa-1"}'] == 2
    assert series['wa_queue_depth{priority="2",session="wa-1"}'] == 1
    assert series['wa_queue_depth{priority="0",session="wa-2"}'] == 0
    assert series['wa_session_state{session="wa-1",status="connected"}'] == 1
    assert series['wa_session_state{session="wa-1",status="offline"}'] == 0
    assert series['wa_session_state{session="wa-2",status="offline"}'] == 1
    assert series['wa_send_latency_seconds_bucket{le="0.5"}'] == 1
    assert series['wa_send_latency_seconds_bucket{le="5.0"}'] == 2
    assert series['wa_send_latency_seconds_bucket{le="60.0"}'] == 3
    assert series["wa_send_latency_seconds_count"] == 3
    assert series["wa_send_latency_seconds_sum"] == pytest.approx(44.3, abs=0.01)

    # And a second scrape does not count the same sends twice
    second = _series(httpx.get(f"{web}/metrics", headers=auth, timeout=10).text)
    assert second["wa_send_latency_seconds_count"] == 3

    # And the daily figures are on the API, behind the key
    assert httpx.get(f"{web}/api/whatsapp/metrics", timeout=10).status_code == 401
    today = metrics.today().isoformat()
    daily = httpx.get(f"{web}/api/whatsapp/metrics", params={"day": today}, headers={"X-API-Key": "k-test"})
    assert daily.status_code == 200
    assert daily.json()["sent"] == (3 if _local_day(sent_at) == metrics.today() else 0)
    bad = httpx.get(f"{web}/api/whatsapp/metrics", params={"day": "nope"}, headers={"X-API-Key": "k-test"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["detail"]


def test_expired_messages_count_on_the_day_they_expired(db_settings: Settings) -> None:
    # Given two messages that expired on the day (WIB), one the day after, and one expired message retried since
    edge = dt.datetime.combine(DAY, dt.time(), tzinfo=WIB)
    expired = [edge + dt.timedelta(hours=1), edge + dt.timedelta(hours=23), edge + dt.timedelta(days=1, hours=1)]
    with session_scope(db_settings.database) as db:
        for i, at in enumerate(expired):
            db.add(Message(id=f"msg_exp_{i}", to_number="6281234567890", status="expired", expired_at=at))
        db.add(Message(id="msg_exp_gone", to_number="6281234567890", status="cancelled", expired_at=expired[0]))

    # Then the day's figures and its roll-up count two
    assert Client(db_settings).stats(DAY)["expired"] == 2
    metrics.rollup(db_settings, DAY)
    assert metrics.stored(db_settings, DAY)[0]["expired"] == 2
