"""Retention on SQLite and PostgreSQL: exactly what is older than the limits goes, in
batches; opt-outs, live bulk jobs, recent rows and other sessions stay. And beat's daily jobs
(retention, metrics roll-up) run on a real worker."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from models import JobStatus, Message, OptOut, QueueJob, SessionStatus, WhatsAppSession, utcnow
from models.db import session_scope
from support.stack import Stack
from wa_tasks.core.redis_keys import DEFAULT_QUEUE
from wa_tasks.ops import metrics, retention
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def db_settings(database: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database, data_dir=tmp_path / "var")


def _session(sid: str, status: str, updated: dt.datetime) -> WhatsAppSession:
    return WhatsAppSession(session_id=sid, device_id=sid.upper(), status=status, created_at=updated, updated_at=updated)


def _job(job_id: str, status: str, created: dt.datetime) -> QueueJob:
    return QueueJob(job_id=job_id, status=status, created_at=created)


def _message(mid: str, created: dt.datetime, **kwargs: object) -> Message:
    return Message(id=mid, to_number="6281234567890", content="Tagihan", created_at=created, **kwargs)


def test_retention_deletes_exactly_what_is_older_than_the_limits(db_settings: Settings) -> None:
    # Given rows on both sides of each limit (15 days messages, 30 days ended jobs, 90 days sessions)
    now = utcnow()
    with session_scope(db_settings.database) as db:
        db.add_all(
            [
                _session("old-disconnected", SessionStatus.DISCONNECTED, now - 90 * DAY - MINUTE),
                _session("old-connected", SessionStatus.CONNECTED, now - 200 * DAY),
                _session("old-logged-out", SessionStatus.LOGGED_OUT, now - 200 * DAY),
                _session("recent-disconnected", SessionStatus.DISCONNECTED, now - 90 * DAY + MINUTE),
            ]
        )
        db.add_all(
            [
                _job("old-completed", JobStatus.COMPLETED, now - 30 * DAY - MINUTE),
                _job("old-failed", JobStatus.FAILED, now - 45 * DAY),
                _job("old-cancelled", JobStatus.CANCELLED, now - 45 * DAY),
                _job("old-running", JobStatus.RUNNING, now - 45 * DAY),
                _job("old-pending", JobStatus.PENDING, now - 45 * DAY),
                _job("recent-completed", JobStatus.COMPLETED, now - 30 * DAY + MINUTE),
            ]
        )
        db.add(OptOut(number="6281200000001", keyword="STOP", created_at=now - 400 * DAY))
        db.flush()
        # 25 old messages, more than two batches of 10
        db.add_all(
            _message(f"msg_old_{i:02d}", now - 15 * DAY - MINUTE - i * DAY, status="read", bulk_job_id="old-failed")
            for i in range(25)
        )
        db.add(_message("msg_edge_kept", now - 15 * DAY + MINUTE, status="sent", session_id="recent-disconnected"))
        # A recent message that refers to a session and a job that retention removes
        db.add(
            _message(
                "msg_refers_to_deleted",
                now - DAY,
                status="delivered",
                session_id="old-disconnected",
                bulk_job_id="old-completed",
            )
        )

    # When retention runs, 10 ids per statement
    result = retention.cleanup(db_settings, now=now, batch_size=10)

    # Then exactly the old rows are gone
    assert result.as_dict() == {"messages": 25, "jobs": 3, "sessions": 1, "webhook_events": 0}
    with session_scope(db_settings.database) as db:
        assert set(db.scalars(select(Message.id))) == {"msg_edge_kept", "msg_refers_to_deleted"}
        assert set(db.scalars(select(QueueJob.job_id))) == {"old-running", "old-pending", "recent-completed"}
        assert set(db.scalars(select(WhatsAppSession.session_id))) == {
            "old-connected",
            "old-logged-out",
            "recent-disconnected",
        }
        assert list(db.scalars(select(OptOut.number))) == ["6281200000001"]
        kept = db.get(Message, "msg_refers_to_deleted")
        assert kept is not None and kept.session_id is None and kept.bulk_job_id is None
        assert kept.status == "delivered"

    # And a second run finds nothing more
    assert retention.cleanup(db_settings, now=now).as_dict() == {
        "messages": 0,
        "jobs": 0,
        "sessions": 0,
        "webhook_events": 0,
    }


def test_a_message_scheduled_far_ahead_stays_until_as_long_after_its_time(db_settings: Settings) -> None:
    # Given messages created 20 days ago: one due tomorrow, one due 16 days ago, one sent at once
    now = utcnow()
    with session_scope(db_settings.database) as db:
        db.add(_message("msg_due_tomorrow", now - 20 * DAY, status="scheduled", send_at=now + DAY))
        db.add(_message("msg_due_long_ago", now - 20 * DAY, status="sent", send_at=now - 16 * DAY))
        db.add(_message("msg_at_once", now - 20 * DAY, status="sent"))

    # Then retention keeps only the one whose time is within the limit
    assert retention.cleanup(db_settings, now=now).messages == 2
    with session_scope(db_settings.database) as db:
        assert list(db.scalars(select(Message.id))) == ["msg_due_tomorrow"]


def test_limits_come_from_the_settings(db_settings: Settings) -> None:
    # Given a message 3 days old and a limit of 2 days
    now = utcnow()
    with session_scope(db_settings.database) as db:
        db.add(_message("msg_three_days", now - 3 * DAY, status="read"))
        db.add(_message("msg_one_day", now - DAY, status="read"))
    short = db_settings.model_copy(update={"retention_messages_days": 2})

    # Then the default keeps it and the short limit deletes it
    assert retention.cleanup(db_settings, now=now).messages == 0
    assert retention.cleanup(short, now=now).messages == 1
    with session_scope(db_settings.database) as db:
        assert list(db.scalars(select(Message.id))) == ["msg_one_day"]


def test_the_beat_tasks_run_on_a_real_worker(stack: Stack) -> None:
    # Given an old message and a message sent yesterday (WIB)
    now = utcnow()
    yesterday = metrics.today() - DAY
    sent = dt.datetime.combine(yesterday, dt.time(12), tzinfo=metrics.DAY_ZONE)
    with stack.db() as db:
        db.add(_message("msg_ancient", now - 20 * DAY, status="read"))
        db.add(_message("msg_yesterday", sent - MINUTE, status="sent", sent_at=sent))
    stack.start("worker")

    # When beat's two daily jobs reach the worker by their public names
    stack.app.send_task("wa.metrics_rollup", queue=DEFAULT_QUEUE)
    stack.app.send_task("wa.retention", queue=DEFAULT_QUEUE)

    # Then yesterday is rolled up and the old message is gone
    deadline = time.monotonic() + 30
    while metrics.stored(stack.settings, yesterday) == [] or stack.client.stats(yesterday)["sent"] != 1:
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.2)
    assert metrics.stored(stack.settings, yesterday)[0]["sent"] == 1
    while True:
        with stack.db() as db:
            if db.get(Message, "msg_ancient") is None:
                break
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.2)


def test_retention_keeps_who_last_sent_to_each_customer_for_routing(db_settings: Settings) -> None:
    from wa_tasks.pipeline import affinity

    def _to(mid: str, created: dt.datetime, **kwargs: object) -> Message:
        return Message(id=mid, content="Tagihan", created_at=created, **kwargs)

    # Given a month of history: customer A sent by wa-2 then (later, still old) by wa-3; customer
    # B sent by wa-2 long ago and by wa-1 recently; customer C only ever had an unsent message
    now = utcnow()
    a, b, c = "6281200000001", "6281200000002", "6281200000003"
    with session_scope(db_settings.database) as db:
        for sid in ("wa-1", "wa-2", "wa-3"):
            db.add(_session(sid, SessionStatus.CONNECTED, now))
        db.flush()
        db.add_all(
            [
                _to("a-1", now - 30 * DAY, to_number=a, session_id="wa-2", sent_at=now - 30 * DAY, status="read"),
                _to("a-2", now - 20 * DAY, to_number=a, session_id="wa-3", sent_at=now - 20 * DAY, status="read"),
                _to("b-1", now - 25 * DAY, to_number=b, session_id="wa-2", sent_at=now - 25 * DAY, status="read"),
                _to("b-2", now - DAY, to_number=b, session_id="wa-1", sent_at=now - DAY, status="read"),
                _to("c-1", now - 25 * DAY, to_number=c, status="failed"),
            ]
        )

    # When retention deletes the old messages, one per batch
    assert retention.cleanup(db_settings, now=now, batch_size=1).messages == 4

    # Then routing still knows who knows A (the latest send, wa-3), B's recent send wins, C is new
    with session_scope(db_settings.database) as db:
        assert db.scalars(select(Message.id)).all() == ["b-2"]
        assert affinity.known_sessions(db, [a, b, c]) == {a: "wa-3", b: "wa-1"}
    # And an older send deleted later does not overwrite a newer one kept
    with session_scope(db_settings.database) as db:
        assert affinity.remember(db, [(a, "wa-2", now - 40 * DAY), (c, None, now)]) == 0
        assert affinity.known_sessions(db, [a]) == {a: "wa-3"}
