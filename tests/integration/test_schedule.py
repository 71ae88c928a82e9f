"""Scheduled messages on a real database and Redis: the releaser queues each due message once
(whatever runs beside it), at the sessions' pace, urgent ones first; expiry at release, at the
session host's claim and after its pace slot; a closed send window holds a message; notice keys;
cancelling a ref's waiting notices."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
import threading
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from models import Message, utcnow
from models.db import session_scope
from sessions_host.delivery import Deliverer, Outcome
from sessions_host.safety import Decision
from sessions_host.transports.base import SendResult, SendTag
from support.stack import settings_env
from wa_tasks.admin import session_config as manage
from wa_tasks.client import Client
from wa_tasks.core import task_names
from wa_tasks.errors import InvalidRequest, InvalidSchedule
from wa_tasks.infra.celery_app import app_for
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import lifecycle, live_state, schedule, submit
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


class _Broker:
    """Stands in for the app's publish: records every dispatch's message ids."""

    def __init__(self) -> None:
        self.dispatched: list[str] = []
        self.lock = threading.Lock()

    def send_task(self, name: str, *args: Any, **options: Any) -> None:
        kwargs = options.get("kwargs") or {}
        with self.lock:
            if name == task_names.DISPATCH:
                self.dispatched.append(kwargs["message_id"])
            elif name == task_names.DISPATCH_BATCH:
                self.dispatched.extend(kwargs["message_ids"])


def _add(settings: Settings, count: int, **columns: Any) -> list[str]:
    ids = []
    with session_scope(settings.database) as db:
        for i in range(count):
            message = Message(to_number=f"62812000{i:05d}", content="Tagihan", **columns)
            db.add(message)
            db.flush()
            ids.append(message.id)
    return ids


def _statuses(settings: Settings, ids: list[str]) -> list[str]:
    with session_scope(settings.database) as db:
        rows = dict(db.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).all())
    return [rows[i] for i in ids]


def _connect(settings: Settings, session_id: str, pace: float | None = None) -> None:
    manage.add(settings, device_id=session_id.upper(), session_id=session_id, priority=1, pace_seconds=pace)
    now = time.time()
    state = live_state.LiveState(session_id=session_id, status="connected", host="h", reported_at=now, since=now)
    live_state.report_host(client_for(settings.redis), "h", 60)
    live_state.publish(client_for(settings.redis), state)


def test_the_releaser_queues_the_due_messages_once_and_leaves_the_rest(settings: Settings) -> None:
    # Given three due scheduled messages, one due tomorrow and a queued one, and sessions without a pace limit
    settings = settings.model_copy(update={"release_ahead_seconds": 0})
    now = utcnow()
    due = _add(settings, 3, status="scheduled", send_at=now - dt.timedelta(seconds=1))
    later = _add(settings, 1, status="scheduled", send_at=now + dt.timedelta(days=1))
    broker = _Broker()

    # When the releaser runs twice
    first = schedule.release(settings, broker)  # type: ignore[arg-type]
    second = schedule.release(settings, broker)  # type: ignore[arg-type]

    # Then the due ones are queued and dispatched once each; tomorrow's waits
    assert (first.released, second.released) == (3, 0)
    assert sorted(broker.dispatched) == sorted(due)
    assert _statuses(settings, due) == ["queued"] * 3
    assert _statuses(settings, later) == ["scheduled"]
    with session_scope(settings.database) as db:
        assert all(m.dispatched_at is not None for m in db.scalars(select(Message).where(Message.id.in_(due))))


def test_two_releasers_claiming_at_once_never_release_a_message_twice(settings: Settings) -> None:
    # Given 600 due messages and two releasers racing on the row-level claim (without the lock)
    ids = _add(settings, 600, status="scheduled", send_at=utcnow() - dt.timedelta(seconds=1))
    taken: list[list[str]] = [[], []]

    def claim(slot: int) -> None:
        while True:
            with session_scope(settings.database) as db:
                rows = schedule._claim_due(db, utcnow(), 25, urgent_only=False)
            if not rows:
                return
            taken[slot].extend(r.id for r in rows)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    # Then every message was taken exactly once, by one of them
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(ids)


def test_a_second_releaser_waits_for_the_lock(settings: Settings) -> None:
    _add(settings, 2, status="scheduled", send_at=utcnow() - dt.timedelta(seconds=1))
    from wa_tasks.core import redis_keys

    client_for(settings.redis).set(redis_keys.RELEASE_LOCK, "another", ex=30)

    assert schedule.release(settings, _Broker()).released == 0  # type: ignore[arg-type]


def test_a_backlog_is_released_at_the_pace_of_the_usable_sessions_and_urgent_ones_always(settings: Settings) -> None:
    # Given two connected sessions sending one a second, 10 s of sending ahead allowed, 5
    # messages already queued, 100 due ones and 3 due urgent ones
    settings = settings.model_copy(update={"release_ahead_seconds": 10})
    _connect(settings, "wa-1", pace=1.0)
    _connect(settings, "wa-2", pace=1.0)
    _add(settings, 5, status="queued")
    now = utcnow()
    normal = _add(settings, 100, status="scheduled", send_at=now - dt.timedelta(seconds=1), priority=5)
    urgent = _add(settings, 3, status="scheduled", send_at=now - dt.timedelta(seconds=1), priority=0)
    broker = _Broker()

    # When the releaser runs
    result = schedule.release(settings, broker)  # type: ignore[arg-type]

    # Then the urgent ones go, and of the rest what the sessions send in 10 s less what waits
    assert _statuses(settings, urgent) == ["queued"] * 3
    assert result.budget == 2 * 10 - 5 - 3
    assert _statuses(settings, normal).count("queued") == 12
    assert len(broker.dispatched) == 15


def test_without_a_usable_session_nothing_but_urgent_messages_is_released(settings: Settings) -> None:
    now = utcnow()
    normal = _add(settings, 2, status="scheduled", send_at=now - dt.timedelta(seconds=1), priority=5)
    urgent = _add(settings, 1, status="scheduled", send_at=now - dt.timedelta(seconds=1), priority=0)

    schedule.release(settings, _Broker())  # type: ignore[arg-type]

    assert _statuses(settings, normal + urgent) == ["scheduled", "scheduled", "queued"]


def test_the_releaser_expires_waiting_messages_past_their_expiry(settings: Settings) -> None:
    # Given a scheduled, a queued and a routed message past their expiry, one sending and one not yet expired
    past, future = utcnow() - dt.timedelta(seconds=1), utcnow() + dt.timedelta(hours=1)
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    expiring = _add(settings, 1, status="scheduled", send_at=past, expires_at=past)
    expiring += _add(settings, 1, status="queued", expires_at=past)
    expiring += _add(settings, 1, status="routed", session_id="wa-1", expires_at=past)
    sending = _add(settings, 1, status="sending", session_id="wa-1", expires_at=past)
    alive = _add(settings, 1, status="queued", expires_at=future)
    broker = _Broker()

    result = schedule.release(settings.model_copy(update={"release_ahead_seconds": 0}), broker)  # type: ignore[arg-type]

    assert result.expired == 3
    assert _statuses(settings, expiring + sending + alive) == ["expired"] * 3 + ["sending", "queued"]
    assert broker.dispatched == []
    with session_scope(settings.database) as db:
        assert db.get(Message, expiring[0]).expired_at is not None  # type: ignore[union-attr]


def test_a_due_message_outside_its_window_is_held_until_the_opening(settings: Settings) -> None:
    now = utcnow()
    opening = now + dt.timedelta(hours=10)
    ids = _add(settings, 2, status="scheduled", send_at=now - dt.timedelta(seconds=1), category="reminder")
    broker = _Broker()

    def hold(category: str | None, tz: str | None, priority: int, at: dt.datetime, **_: object) -> dt.datetime | None:
        return opening if category == "reminder" else None

    result = schedule.release(
        settings.model_copy(update={"release_ahead_seconds": 0}),
        broker,  # type: ignore[arg-type]
        hold=hold,
    )

    assert (result.released, result.held) == (0, 2)
    assert _statuses(settings, ids) == ["scheduled", "scheduled"]
    with session_scope(settings.database) as db:
        assert {m.send_at for m in db.scalars(select(Message).where(Message.id.in_(ids)))} == {
            opening.replace(microsecond=opening.microsecond)
        }
    assert broker.dispatched == []


# The session host's claim ----------------------------------------------------------------------


class _Transport:
    connected = True

    def __init__(self) -> None:
        self.sent: list[str] = []

    def new_tag(self) -> SendTag:
        return SendTag()

    def send_text(self, to_jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        self.sent.append(to_jid)
        return SendResult(wa_message_id=f"WA-{len(self.sent)}")


class _Gate:
    def __init__(self, slot_wait: float = 0.0) -> None:
        self.slot_wait = slot_wait

    def recipient_wait(self, number: str, message_id: str) -> float:
        return 0.0

    def take_slot(self) -> bool:
        time.sleep(self.slot_wait)  # the pace slot: the time a paced session waits before its send
        return True

    def safety_check(self, number: str) -> tuple[Decision, bool]:
        return Decision(True), False

    def safety_sent(self, number: str, is_new: bool) -> None:
        pass

    def restricted(self, reason: str, until: float | None) -> None:
        pass


def _deliverer(settings: Settings, gate: _Gate | None = None) -> tuple[Deliverer, _Transport]:
    transport = _Transport()
    return Deliverer(app_for(settings), settings, "wa-1", transport, gate or _Gate()), transport  # type: ignore[arg-type]


def test_the_host_expires_a_routed_message_past_its_expiry_instead_of_sending_it(settings: Settings) -> None:
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    [message_id] = _add(settings, 1, status="routed", session_id="wa-1", expires_at=utcnow() - dt.timedelta(seconds=1))
    deliverer, transport = _deliverer(settings)

    assert deliverer.deliver(message_id) == Outcome.EXPIRED
    assert transport.sent == []
    assert _statuses(settings, [message_id]) == ["expired"]


def test_the_host_expires_a_message_whose_expiry_passes_while_it_waits_for_its_pace_slot(settings: Settings) -> None:
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    expires = utcnow() + dt.timedelta(seconds=0.3)
    [message_id] = _add(settings, 1, status="routed", session_id="wa-1", expires_at=expires)
    deliverer, transport = _deliverer(settings, _Gate(slot_wait=0.6))

    assert deliverer.deliver(message_id) == Outcome.EXPIRED
    assert transport.sent == []
    assert _statuses(settings, [message_id]) == ["expired"]


def test_the_host_holds_a_message_outside_its_window_until_the_opening(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    opening = (utcnow() + dt.timedelta(hours=11)).replace(microsecond=0)
    [message_id] = _add(settings, 1, status="routed", session_id="wa-1", category="promotion")
    monkeypatch.setattr(schedule, "window_hold", lambda settings, category, tz, priority, now, **_: opening)
    deliverer, transport = _deliverer(settings)

    assert deliverer.deliver(message_id) == Outcome.HELD
    assert transport.sent == []
    with session_scope(settings.database) as db:
        message = db.get(Message, message_id)
        assert message is not None
        assert (message.status, message.send_at, message.session_id, message.attempts) == (
            "scheduled",
            opening,
            None,
            0,
        )


def test_an_unexpired_message_in_its_window_is_sent(settings: Settings) -> None:
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    [message_id] = _add(settings, 1, status="routed", session_id="wa-1", expires_at=utcnow() + dt.timedelta(hours=1))
    deliverer, transport = _deliverer(settings)

    assert deliverer.deliver(message_id) == Outcome.SENT
    assert len(transport.sent) == 1


# Notices -----------------------------------------------------------------------------------------


def test_cancel_pending_cancels_a_refs_waiting_notices_of_the_categories_but_never_one_sending(
    settings: Settings,
) -> None:
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    later = utcnow() + dt.timedelta(days=1)
    waiting = _add(settings, 1, status="scheduled", send_at=later, ref="INV-7", category="reminder")
    waiting += _add(settings, 1, status="queued", ref="INV-7", category="reminder")
    waiting += _add(settings, 1, status="routed", session_id="wa-1", ref="INV-7", category="reminder")
    sending = _add(settings, 1, status="sending", session_id="wa-1", ref="INV-7", category="reminder")
    other_category = _add(settings, 1, status="scheduled", send_at=later, ref="INV-7", category="notification")
    other_ref = _add(settings, 1, status="scheduled", send_at=later, ref="INV-8", category="reminder")

    with session_scope(settings.database) as db:
        cancelled = lifecycle.cancel_pending(db, "INV-7", ["reminder"])

    assert cancelled == 3
    assert _statuses(settings, waiting + sending + other_category + other_ref) == [
        "cancelled",
        "cancelled",
        "cancelled",
        "sending",
        "scheduled",
        "scheduled",
    ]
    with session_scope(settings.database) as db:
        assert lifecycle.cancel_pending(db, "INV-7") == 1  # every category: the notification


def _prepared(settings: Settings, **timing: Any) -> submit.Prepared:
    with session_scope(settings.database) as db:
        prepared = submit.prepare(db, settings, SendRequest("0812-3456-7890", text="Tagihan Anda"))
    return dataclasses.replace(prepared, timing=schedule.check(**timing))


def test_a_scheduled_message_is_stored_scheduled_and_not_dispatched(settings: Settings) -> None:
    send_at = (utcnow() + dt.timedelta(hours=1)).replace(microsecond=0)
    prepared = _prepared(settings, send_at=send_at, expires_at=send_at + dt.timedelta(hours=2), ref="INV-7")

    message_id, created = submit.persist(settings, prepared)

    assert created and not submit.dispatch_now(prepared, created)
    with session_scope(settings.database) as db:
        message = db.get(Message, message_id)
        assert message is not None
        assert (message.status, message.send_at, message.ref, message.dispatched_at) == (
            "scheduled",
            send_at,
            "INV-7",
            None,
        )


def test_a_repeated_notice_key_returns_the_first_message_even_after_it_was_sent(settings: Settings) -> None:
    first, created = submit.persist(settings, _prepared(settings, notice_key="invoice:INV-7:reminder:H-3"))
    with session_scope(settings.database) as db:
        db.get(Message, first).status = "sent"  # type: ignore[union-attr]

    again, created_again = submit.persist(settings, _prepared(settings, notice_key="invoice:INV-7:reminder:H-3"))

    assert created and not created_again
    assert again == first
    with session_scope(settings.database) as db:
        assert len(db.scalars(select(Message.id)).all()) == 1


def test_persist_cancels_a_refs_notices_in_the_transaction_that_stores_the_message(settings: Settings) -> None:
    [reminder] = _add(
        settings, 1, status="scheduled", send_at=utcnow() + dt.timedelta(days=1), ref="INV-7", category="reminder"
    )
    prepared = _prepared(settings)

    submit.persist(settings, prepared, cancel=("INV-7", ["reminder"]))
    assert _statuses(settings, [reminder]) == ["cancelled"]

    # And a store that does not happen (its notice key is taken) cancels nothing
    [other] = _add(
        settings, 1, status="scheduled", send_at=utcnow() + dt.timedelta(days=1), ref="INV-8", category="reminder"
    )
    [taken] = _add(settings, 1, status="sent", notice_key="taken")
    again = dataclasses.replace(prepared, timing=schedule.Timing(notice_key="taken"))
    assert submit.persist(settings, again, cancel=("INV-8", ["reminder"])) == (taken, False)
    assert _statuses(settings, [other]) == ["scheduled"]


def test_the_client_and_the_command_line_cancel_a_refs_waiting_notices(settings: Settings) -> None:
    later = utcnow() + dt.timedelta(days=1)
    _add(settings, 2, status="scheduled", send_at=later, ref="INV-7", category="reminder")
    _add(settings, 1, status="scheduled", send_at=later, ref="INV-9", category="reminder")
    client = Client(settings)

    assert client.cancel_pending("INV-7", categories=["promotion"]) == 0
    assert client.cancel_pending("INV-7", categories=["reminder"]) == 2
    for bad, words in [("", "ref must be a non-empty string"), ("x" * 101, "ref is 101 characters")]:
        with pytest.raises(InvalidSchedule, match=words):
            client.cancel_pending(bad)
    with pytest.raises(InvalidSchedule, match="categories must be a list"):
        client.cancel_pending("INV-7", categories="reminder")

    env = settings_env(settings)
    listed = _cli(env, "notices", "list", "--ref", "INV-9", "--json")
    cancelled = _cli(env, "notices", "cancel", "--ref", "INV-9")
    assert listed.returncode == 0, listed.stderr
    assert [row["status"] for row in json.loads(listed.stdout)] == ["scheduled"]
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == "1 waiting message(s) about INV-9 cancelled"
    assert _cli(env, "notices", "cancel", "--ref", "").returncode != 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wa_tasks", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_scheduled_bulk_is_stored_scheduled_and_published_only_by_the_releaser(settings: Settings) -> None:
    from wa_tasks.pipeline import bulk

    broker = _Broker()
    due = utcnow() + dt.timedelta(seconds=30)
    job = bulk.create(
        settings,
        broker,  # type: ignore[arg-type]
        [{"whatsapp": f"0812000000{i:02d}"} for i in range(20)],
        text="Tagihan",
        send_at=due,
        expires_at=due + dt.timedelta(hours=1),
    )

    progress = bulk.progress(settings, job)
    assert (progress["scheduled"], progress["queued"], broker.dispatched) == (20, 0, [])
    with pytest.raises(InvalidSchedule, match="send_at is a naive datetime"):
        bulk.create(settings, broker, [{"whatsapp": "081200000000"}], text="x", send_at=dt.datetime(2030, 1, 1))  # type: ignore[arg-type]

    later = schedule.release(
        settings.model_copy(update={"release_ahead_seconds": 0}),
        broker,  # type: ignore[arg-type]
        now=lambda: due + dt.timedelta(seconds=1),
    )
    assert later.released == 20
    assert len(set(broker.dispatched)) == 20
    assert bulk.progress(settings, job)["scheduled"] == 0
    assert int(client_for(settings.redis).get("wa:release:total") or 0) == 20


LADDER_DATA = {"customer_name": "Budi", "amount": 150000, "payment_url": "https://isp.example/pay/INV-7"}


def _ladder_rows(settings: Settings) -> dict[str, tuple[str, dt.datetime | None, str | None]]:
    with session_scope(settings.database) as db:
        rows = db.scalars(select(Message).where(Message.ref == "INV-7")).all()
        return {str(m.notice_key).rsplit(":", 1)[1]: (m.status, m.send_at, m.content) for m in rows}


def test_schedule_reminders_creates_the_ladder_once_and_a_moved_due_date_moves_the_waiting_steps(
    settings: Settings,
) -> None:
    client = Client(settings)
    client.install_default_templates()
    due = (utcnow() + dt.timedelta(days=10)).astimezone(ZoneInfo("Asia/Jakarta")).date()

    # When billing's cron schedules the ladder twice
    first = client.schedule_reminders("INV-7", "0812-3456-7890", due, data=LADDER_DATA)
    again = client.schedule_reminders("INV-7", "0812-3456-7890", due, data=LADDER_DATA)

    # Then there is one scheduled message per step, at 09:00 WIB of its day, with its template
    assert first == again and sorted(first) == ["H+1", "H-1", "H-3", "H0"]
    rows = _ladder_rows(settings)
    wib = ZoneInfo("Asia/Jakarta")
    assert rows["H-3"][1] == dt.datetime.combine(due - dt.timedelta(days=3), dt.time(9), tzinfo=wib)
    assert rows["H+1"][1] == dt.datetime.combine(due + dt.timedelta(days=1), dt.time(9), tzinfo=wib)
    assert {status for status, _, _ in rows.values()} == {"scheduled"}
    with session_scope(settings.database) as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 4

    # When the due date moves by five days after H-3 was sent
    with session_scope(settings.database) as db:
        db.execute(update(Message).where(Message.id == first["H-3"]).values(status="sent"))
    later = due + dt.timedelta(days=5)
    moved = client.schedule_reminders("INV-7", "0812-3456-7890", later, data=LADDER_DATA)

    # Then the steps not yet sent move (and say the new date); the sent one stays; nothing new is created
    assert moved == first
    rows = _ladder_rows(settings)
    assert rows["H-1"][1] == dt.datetime.combine(later - dt.timedelta(days=1), dt.time(9), tzinfo=wib)
    assert rows["H-3"][0] == "sent"
    assert str(later.day) in (rows["H0"][2] or "")
    with session_scope(settings.database) as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 4


def test_schedule_reminders_skips_past_steps_and_refuses_bad_input_storing_nothing(settings: Settings) -> None:
    client = Client(settings)
    client.install_default_templates()
    due = (utcnow() + dt.timedelta(days=1)).astimezone(ZoneInfo("Asia/Jakarta")).date()

    created = client.schedule_reminders("INV-8", "0812-3456-7890", due, data=LADDER_DATA)
    assert "H-3" not in created and "H+1" in created

    for kwargs, words in [
        ({"ladder": ("H-3", "tomorrow")}, "tomorrow"),
        ({"tz": "Mars/Base"}, "unknown time zone"),
        ({"at": "25:00"}, "25:00"),
        ({"data": {"customer_name": "Budi"}}, "amount"),
    ]:
        with pytest.raises(InvalidRequest, match=words):
            client.schedule_reminders("INV-9", "0812-3456-7890", due, **{"data": LADDER_DATA, **kwargs})  # type: ignore[arg-type]
    with session_scope(settings.database) as db:
        assert db.scalar(select(func.count()).select_from(Message).where(Message.ref == "INV-9")) == 0


# The entry points ------------------------------------------------------------------------------


def test_the_client_stores_a_scheduled_message_at_once_and_refuses_bad_timing_storing_nothing(
    settings: Settings,
) -> None:
    client = Client(settings)
    later = (utcnow() + dt.timedelta(hours=2)).replace(microsecond=0)

    message_id = client.send("0812-3456-7890", text="Tagihan", send_at=later, expires_at=later + dt.timedelta(hours=1))
    again = client.send("0812-3456-7890", text="Tagihan", notice_key="invoice:INV-1:reminder:H-1", ref="INV-1")
    same = client.send("0812-3456-7890", text="Lain", notice_key="invoice:INV-1:reminder:H-1", ref="INV-1")

    status = client.status(message_id)
    assert (status["status"], status["sendAt"]) == ("scheduled", later.isoformat().replace("+00:00", "Z"))
    assert status["expiresAt"] is not None
    assert same == again and client.status(again)["noticeKey"] == "invoice:INV-1:reminder:H-1"
    for kwargs, words in [
        ({"send_at": dt.datetime(2030, 1, 1, 9, 0)}, "send_at is a naive datetime"),
        ({"send_at": later, "expires_at": later - dt.timedelta(minutes=1)}, "expires_at"),
        ({"send_at": utcnow() - dt.timedelta(hours=1)}, "is in the past"),
        ({"tz": "Nowhere/Town"}, "unknown time zone"),
        ({"notice_key": "k" * 201}, "notice_key is 201 characters"),
    ]:
        with pytest.raises(InvalidSchedule, match=words):
            client.send("0812-3456-7891", text="x", **kwargs)  # type: ignore[arg-type]
    with session_scope(settings.database) as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 2


def test_the_command_line_schedules_with_at_and_says_what_is_wrong(settings: Settings) -> None:
    env = settings_env(settings)
    at = (utcnow() + dt.timedelta(hours=3)).astimezone(ZoneInfo("Asia/Jakarta")).replace(microsecond=0)

    done = _cli(env, "send", "0812-3456-7890", "--text", "Tagihan", "--at", at.isoformat(), "--ref", "INV-3")
    naive = _cli(env, "send", "0812-3456-7890", "--text", "Tagihan", "--at", "2030-01-01T09:00")

    assert done.returncode == 0, done.stderr
    status = Client(settings).status(done.stdout.strip())
    assert (status["status"], status["ref"]) == ("scheduled", "INV-3")
    assert naive.returncode != 0 and "send_at is a naive datetime" in naive.stderr
    assert "Traceback" not in naive.stderr
