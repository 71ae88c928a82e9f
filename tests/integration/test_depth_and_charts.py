"""The dashboard's data on real services: the depth sampler on Redis (what it measures, how it trims
to 24 h, the beat task through a real worker), and ``charts`` on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from models import Message, utcnow
from models.db import session_scope
from support.stack import Stack
from wa_tasks.admin import dashboard
from wa_tasks.admin import session_config as manage
from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


def _fill(settings: Settings, session_id: str, per_step: dict[int, int]) -> None:
    redis = client_for(settings.redis)
    queue = redis_keys.session_queue(session_id)
    for step, count in per_step.items():
        redis.rpush(queue if step == 0 else f"{queue}:{step}", *[json.dumps({"n": n}) for n in range(count)])


def test_a_sample_counts_every_priority_list_and_samples_older_than_a_day_are_dropped(settings: Settings) -> None:
    # Given two sessions with messages waiting on several priority steps
    redis = client_for(settings.redis)
    _fill(settings, "wa-1", {0: 2, 3: 1, 9: 4})
    _fill(settings, "wa-2", {5: 1})
    now = time.time()

    # When samples are taken 25 h, 23 h and 0 h ago
    dashboard.record_depth(redis, ["wa-1", "wa-2"], now - 25 * 3600)
    dashboard.record_depth(redis, ["wa-1", "wa-2"], now - 23 * 3600)
    latest = dashboard.record_depth(redis, ["wa-1", "wa-2", "wa-3"], now)

    # Then each sample is the total per session, and only the last 24 h are kept
    assert latest == {"wa-1": 7, "wa-2": 1, "wa-3": 0}
    samples = dashboard.depth_samples(redis, 0)
    assert [round(now - t) for t, _ in samples] == [23 * 3600, 0]
    assert redis.zcard(redis_keys.DEPTH_SAMPLES) == 2
    # And two equal samples at different times are two points
    dashboard.record_depth(redis, ["wa-1", "wa-2", "wa-3"], now + 30)
    assert redis.zcard(redis_keys.DEPTH_SAMPLES) == 3


def test_the_charts_count_what_the_rows_say(settings: Settings) -> None:
    # Given a session with sends over the last hours, on either database
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0)

    def message(status: str, sent: dt.datetime | None, **times: dt.datetime) -> Message:
        return Message(session_id="wa-1", to_number="6281234567890", content="x", status=status, sent_at=sent, **times)

    with session_scope(settings.database) as db:
        db.add_all(
            [
                message("read", hour, delivered_at=hour + dt.timedelta(seconds=2), read_at=hour),
                message("delivered", hour, delivered_at=hour + dt.timedelta(seconds=4)),
                message("sent", hour - dt.timedelta(hours=1)),
                message("failed", None, failed_at=hour - dt.timedelta(hours=2)),
                message("read", now - dt.timedelta(hours=30), delivered_at=now - dt.timedelta(hours=30)),
            ]
        )
    dashboard.record_depth(client_for(settings.redis), ["wa-1"], time.time())

    # When the dashboard reads them
    charts = dashboard.charts(settings, now)

    # Then the current hour has the read and the delivered one, the earlier hours the others
    wa1 = charts["sends"]["wa-1"]
    assert (wa1["read"][-1], wa1["delivered"][-1], wa1["sent"][-2], wa1["failed"][-3]) == (1, 1, 1, 1)
    assert charts["totals"] == {"sent": 1, "delivered": 1, "read": 1, "failed": 1}
    assert charts["latency"]["p50"][-1] == 3.0 and charts["latency"]["count"][-1] == 2
    assert charts["depth"]["sessions"] == {"wa-1": [0]}
    assert len(charts["labels"]) == 24 and charts["labels"][-1] == hour.astimezone(dashboard.DAY_ZONE).strftime("%H:00")


def test_beat_s_depth_task_records_a_sample_through_a_real_worker(stack: Stack) -> None:
    # Given a configured session with a backlog and a running worker
    stack.add_session("wa-1", priority=1)
    _fill(stack.settings, "wa-1", {5: 3})
    stack.start("worker")

    # When beat's entry is sent (here by hand), the worker stores a sample
    stack.app.send_task("wa.sample_depth")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not stack.redis.zcard(redis_keys.DEPTH_SAMPLES):
        time.sleep(0.1)
    samples = dashboard.depth_samples(stack.redis, 0)
    assert [sample for _, sample in samples] == [{"wa-1": 3}], stack.logs()
