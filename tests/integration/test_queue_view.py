"""The read-side views (``wa_tasks.admin.queue_view``) on SQLite and PostgreSQL with a real Redis: message
lists filter and page exactly like a count made here from the rows inserted, queue depths are the
broker's own priority lists, and job lists carry the counts of ``bulk.progress``."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from models import JobStatus, Message, QueueJob, Template, WhatsAppSession
from models.db import session_scope
from wa_tasks.admin import queue_view
from wa_tasks.core import redis_keys
from wa_tasks.errors import InvalidRequest
from wa_tasks.infra.celery_app import make_app
from wa_tasks.pipeline import bulk
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
STATUSES = ("queued", "routed", "sent", "delivered", "read", "failed", "cancelled")


def _seed(settings: Settings) -> list[Message]:
    """Two sessions, a template, two bulk jobs and 60 messages, several sharing a created_at."""
    rng = random.Random(3)
    rows = []
    with session_scope(settings.database) as db:
        db.add_all(WhatsAppSession(session_id=s, device_id=s.upper()) for s in ("wa-1", "wa-2"))
        template = Template(name="info", content="Halo {{ name }}", variables=["name"])
        db.add(template)
        db.add_all(
            QueueJob(
                job_id=j,
                queue_name="bulk",
                job_data={"template": "info"},
                status=JobStatus.RUNNING,
                total=n,
                created_at=T0 + dt.timedelta(minutes=m),
            )
            for j, n, m in (("job_a", 10, 1), ("job_b", 5, 2))
        )
        db.flush()
        jobs = itertools.chain(["job_a"] * 10, ["job_b"] * 5, itertools.repeat(None))
        for i, job in zip(range(60), jobs, strict=False):
            status = rng.choice(STATUSES)
            row = Message(
                id=f"msg_{i:03d}",
                to_number=f"62812340000{i % 7:02d}",
                content="rahasia",
                status=status,
                priority=rng.choice([0, 2, 5, 8]),
                session_id=None if status == "queued" else rng.choice(["wa-1", "wa-2"]),
                template_id=template.id if i % 2 else None,
                bulk_job_id=job,
                attempts=i % 3,
                error_message="boom" if status == "failed" else None,
                # Every third message shares its created_at with the one before it.
                created_at=T0 + dt.timedelta(seconds=i - (i % 3 == 2)),
                sent_at=T0 + dt.timedelta(seconds=i + 1) if status in ("sent", "delivered", "read") else None,
            )
            db.add(row)
            rows.append(row)
    return rows


def _newest_first(rows: list[Message]) -> list[str]:
    return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


def test_message_lists_filter_and_page_like_the_rows(settings: Settings) -> None:
    rows = _seed(settings)

    # Unfiltered: newest first, every field but the text
    listed = queue_view.list_messages(settings, limit=500)
    assert [m["id"] for m in listed] == _newest_first(rows)
    first = next(m for m in listed if m["id"] == "msg_001")
    assert first["template"] == "info" and first["to"] == "6281234000001" and "text" not in first
    assert set(first) == {
        "id", "to", "status", "priority", "sessionId", "template", "error", "attempts",
        "createdAt", "sentAt", "deliveredAt", "readAt", "bulkJobId", "ambiguousSend",
        "sendAt", "expiresAt", "noticeKey", "ref", "category",
    }  # fmt: skip

    # Each filter, and a combination, equal a filter made here
    for status in STATUSES:
        got = [m["id"] for m in queue_view.list_messages(settings, status=status, limit=500)]
        assert got == _newest_first([r for r in rows if r.status == status])
    got = [m["id"] for m in queue_view.list_messages(settings, session="wa-2", job="job_a", limit=500)]
    assert got == _newest_first([r for r in rows if r.session_id == "wa-2" and r.bulk_job_id == "job_a"])
    # A number in the form billing code writes it finds the stored E.164 digits
    got = [m["id"] for m in queue_view.list_messages(settings, to="0812-3400-0003", limit=500)]
    assert got == _newest_first([r for r in rows if r.to_number == "6281234000003"]) and got

    # Paging by cursor visits every row once, in order, across created_at ties
    pages, before = [], None
    while True:
        page = queue_view.list_messages(settings, limit=7, before=before)
        if not page:
            break
        pages.append([m["id"] for m in page])
        before = page[-1]["id"]
    assert list(itertools.chain(*pages)) == _newest_first(rows)
    assert all(len(p) == 7 for p in pages[:-1])

    # Invalid filters say what was wrong
    with pytest.raises(InvalidRequest, match="status must be one of"):
        queue_view.list_messages(settings, status="lost")
    with pytest.raises(InvalidRequest, match="no message 'msg_nope'"):
        queue_view.list_messages(settings, before="msg_nope")
    with pytest.raises(InvalidRequest, match="limit must be"):
        queue_view.list_messages(settings, limit=0)


def test_queue_depths_are_the_broker_priority_lists(settings: Settings) -> None:
    # Given three sessions, and deliver tasks waiting on two of them at several priorities
    with session_scope(settings.database) as db:
        db.add_all(WhatsAppSession(session_id=s, device_id=s.upper()) for s in ("wa-1", "wa-2", "wa-3"))
    app = make_app(settings)
    waiting = {("wa-1", 0): 2, ("wa-1", 5): 3, ("wa-2", 8): 1, ("wa-2", 9): 4}
    for (sid, step), n in waiting.items():
        for _ in range(n):
            app.send_task("wa.deliver", kwargs={"message_id": "x"}, queue=redis_keys.session_queue(sid), priority=step)

    # Then every configured session is listed, each step with what kombu put on its list
    depths = queue_view.queue_depths(settings)
    assert set(depths) == {"wa-1", "wa-2", "wa-3"}
    for sid, per_step in depths.items():
        assert per_step == {step: waiting.get((sid, step), 0) for step in range(10)}


def test_job_lists_carry_the_progress_counts(settings: Settings) -> None:
    _seed(settings)
    jobs = queue_view.list_jobs(settings)
    assert [j["id"] for j in jobs] == ["job_b", "job_a"]
    for job in jobs:
        progress = bulk.progress(settings, job["id"])
        assert {k: job[k] for k in progress} == progress
        assert job["template"] == "info" and job["createdAt"].endswith("Z")
    assert sum(jobs[1]["byStatus"].values()) == 10
    assert [j["id"] for j in queue_view.list_jobs(settings, limit=1)] == ["job_b"]
