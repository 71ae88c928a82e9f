"""Scheduled messages and notices in one process (``tests/support/inproc.py``): the releaser driven
with a clock the test sets, the session host's claim with a clock the test moves, and the simulated
network's ledger for what the customers received. The same cases with real processes and real
time: ``tests/integration/test_scheduling_pipeline.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, update

from models import Message, utcnow
from models.db import session_scope
from sessions_host import delivery
from support.inproc import InProcess
from wa_tasks import client
from wa_tasks.core import task_names, windows
from wa_tasks.pipeline import schedule

TEXT = "Tagihan internet Anda Rp150.000 jatuh tempo besok."
WIB = windows.zone("Asia/Jakarta")


def release_at(inproc: InProcess, when: dt.datetime) -> schedule.Released:
    """One run of the releaser as beat's ``wa.release`` makes it, on the test's clock."""
    return schedule.release(inproc.settings, inproc.app, now=lambda: when)


def status(message_id: str) -> str:
    return str(client.status(message_id)["status"])


def set_columns(inproc: InProcess, message_ids: list[str], **values: Any) -> None:
    with session_scope(inproc.settings.database) as db:
        db.execute(update(Message).where(Message.id.in_(message_ids)).values(**values))


def test_a_scheduled_message_is_released_at_its_time_not_before_and_once(inproc: InProcess) -> None:
    due = (utcnow() + dt.timedelta(hours=1)).replace(microsecond=0)
    message_id = client.send("0812-3456-7001", text=TEXT, send_at=due)
    assert status(message_id) == "scheduled" and inproc.broker.history == []  # nothing of it in the broker

    early = release_at(inproc, due - dt.timedelta(seconds=1))
    assert (early.released, status(message_id), inproc.broker.history) == (0, "scheduled", [])

    on_time = release_at(inproc, due)
    assert on_time.ids == [message_id] and status(message_id) == "queued"
    assert [t.name for t in inproc.broker.history] == [task_names.DISPATCH_BATCH]
    inproc.settle(message_id, "delivered")
    assert [e.text for e in inproc.ledger("6281234567001")] == [TEXT]

    again = release_at(inproc, due + dt.timedelta(minutes=1))  # a later run, or a second releaser
    assert again.released == 0 and len(inproc.ledger()) == 1


def test_the_release_task_queues_what_is_due_as_beat_runs_it(inproc: InProcess) -> None:
    message_id = client.send("0812-3456-7001", text=TEXT, send_at=utcnow() + dt.timedelta(hours=1))
    set_columns(inproc, [message_id], send_at=utcnow() - dt.timedelta(seconds=1))  # its hour has come

    inproc.app.send_task(task_names.RELEASE)
    inproc.settle(message_id, "delivered")

    assert [t.name for t in inproc.broker.history[:2]] == [task_names.RELEASE, task_names.DISPATCH_BATCH]
    assert len(inproc.ledger("6281234567001")) == 1


def test_a_message_past_its_expiry_expires_and_is_never_sent_late(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc()
    now = utcnow()
    scheduled = client.send(
        "0812-3456-7002", text=TEXT, send_at=now + dt.timedelta(hours=1), expires_at=now + dt.timedelta(hours=2)
    )
    # Released after its expiry (the releaser was down for hours): expired, not queued
    late = release_at(inproc, now + dt.timedelta(hours=3))
    assert (late.expired, late.released, status(scheduled)) == (1, 0, "expired")

    # A message waiting for a session (none is up) while its expiry passes: expired at dispatch
    waiting = client.send("0812-3456-7003", text=TEXT, expires_at=now + dt.timedelta(hours=1))
    inproc.run()
    assert status(waiting) == "queued"
    set_columns(inproc, [waiting], expires_at=utcnow() - dt.timedelta(seconds=1))  # an hour later
    inproc.add_session("WA-1")
    inproc.wait_for(lambda: status(waiting) == "expired", "expired at its next dispatch")

    control = client.send("0812-3456-7004", text=TEXT)
    inproc.settle(control, "delivered")
    assert client.status(scheduled)["expiredAt"] is not None
    assert [e.to for e in inproc.ledger()] == ["6281234567004"]  # neither expired message was sent


def test_a_ladder_scheduled_twice_is_one_message_per_step(inproc: InProcess) -> None:
    client.install_default_templates()
    due = (utcnow().astimezone(WIB) + dt.timedelta(days=10)).date()
    data = {"customer_name": "Sari", "amount": 175000, "payment_url": "https://isp.example/pay/INV-L"}

    first = client.schedule_reminders("INV-L", "0812-3456-7010", due, ladder=("H-3", "H-1", "H0"), data=data)
    second = client.schedule_reminders("INV-L", "0812-3456-7010", due, ladder=("H-3", "H-1", "H0"), data=data)

    assert first == second and list(first) == ["H-3", "H-1", "H0"]
    with session_scope(inproc.settings.database) as db:
        assert db.scalar(select(func.count()).select_from(Message).where(Message.ref == "INV-L")) == 3
    # Each step is released at 09:00 of its day, and sent once
    for step, days_before in (("H-3", 3), ("H-1", 1), ("H0", 0)):
        at = dt.datetime.combine(due - dt.timedelta(days=days_before), dt.time(9, 0), tzinfo=WIB)
        assert release_at(inproc, at - dt.timedelta(seconds=1)).released == 0
        assert release_at(inproc, at).ids == [first[step]]
        inproc.settle(first[step], "delivered")
        # The cron calling again the same day changes nothing, sent steps included
        assert client.schedule_reminders("INV-L", "0812-3456-7010", due, ladder=("H-3", "H-1", "H0"), data=data) == (
            first
        )
    received = inproc.ledger("6281234567010")
    assert len(received) == 3 and all("INV-L" in e.text for e in received)


def test_payment_cancels_the_waiting_reminders_while_the_one_being_sent_still_goes(inproc: InProcess) -> None:
    client.install_default_templates()
    data = {
        "customer_name": "Budi",
        "invoice_number": "INV-7",
        "amount": 150000,
        "due_date": "2026-12-05",
        "payment_url": "https://isp.example/pay/INV-7",
    }
    tomorrow = utcnow() + dt.timedelta(days=1)
    later = [
        client.send(
            "0812-3456-7005",
            template="payment_reminder",
            data=data,
            ref="INV-7",
            notice_key=f"invoice:INV-7:reminder:{step}",
            send_at=tomorrow + dt.timedelta(hours=i),
        )
        for i, step in enumerate(("H0", "H+1"))
    ]
    paid: list[str] = []
    seen_sending: list[str] = []

    # The payment callback arrives while the H-1 reminder is being sent (its row is "sending")
    transport = inproc.runner("wa-1").transport
    send = transport.inner.send_text

    def send_during_payment(jid: str, text: str, tag: Any = None) -> Any:
        if not paid:
            seen_sending.append(status(sending))
            paid.append(
                client.notify(
                    "payment.completed",
                    {
                        "customer_whatsapp": "0812-3456-7005",
                        "customer_name": "Budi",
                        "invoice_number": "INV-7",
                        "amount": 150000,
                        "payment_method": "QRIS",
                        "payment_date": "2026-12-04",
                        "reference": "QR-1",
                    },
                    idempotency_key="paid-INV-7",
                )
            )
        return send(jid, text, tag=tag)

    transport.inner.send_text = send_during_payment  # type: ignore[method-assign]
    sending = client.send(
        "0812-3456-7005", template="payment_reminder", data=data, ref="INV-7", notice_key="invoice:INV-7:reminder:H-1"
    )

    inproc.settle(sending, "delivered")  # the one being sent still goes
    assert seen_sending == ["sending"]
    assert [status(i) for i in later] == ["cancelled", "cancelled"]
    inproc.settle(paid[0], "delivered")
    # Nothing of the cancelled ones is released when their time comes
    assert release_at(inproc, tomorrow + dt.timedelta(days=1)).released == 0
    texts = [e.text for e in inproc.ledger("6281234567005")]
    assert len(texts) == 2 and "INV-7" in texts[0] and texts[1].startswith("✅ Pembayaran Berhasil!")


def test_a_window_that_closes_mid_bulk_holds_the_rest_for_its_next_opening(
    make_inproc: Callable[..., InProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    inproc = make_inproc(window_reminder="08:00-20:00", timezone="Asia/Jakarta")
    inproc.add_session("WA-1")
    client.create_template("pengingat", "Pengingat tagihan untuk {{name}}.", category="reminder")
    # The host's clock: 19:59:50 WIB today, past 20:00 once three reminders went out
    today = utcnow().astimezone(WIB).date()
    clock = [dt.datetime.combine(today, dt.time(19, 59, 50), tzinfo=WIB).astimezone(dt.UTC)]
    monkeypatch.setattr(delivery, "utcnow", lambda: clock[0])
    transport = inproc.runner("wa-1").transport
    send = transport.inner.send_text

    def paced_send(jid: str, text: str, tag: Any = None) -> Any:
        result = send(jid, text, tag=tag)
        if len(transport.sends) == 3:
            clock[0] = dt.datetime.combine(today, dt.time(20, 0, 1), tzinfo=WIB).astimezone(dt.UTC)
        return result

    transport.inner.send_text = paced_send  # type: ignore[method-assign]

    job = client.send_bulk(
        [{"whatsapp": f"0812-7000-{i:04d}", "data": {"name": f"C{i}"}} for i in range(8)], template="pengingat"
    )
    inproc.wait_for(
        lambda: (lambda p: p["delivered"] + p["scheduled"] == 8)(client.bulk_status(job)), "each sent or held"
    )

    progress = client.bulk_status(job)
    assert (progress["delivered"], progress["scheduled"], progress["failed"]) == (3, 5, 0)
    opening = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(8, 0), tzinfo=WIB)
    with session_scope(inproc.settings.database) as db:
        held = db.execute(
            select(Message.send_at, Message.session_id).where(Message.bulk_job_id == job, Message.status == "scheduled")
        ).all()
    assert {row.send_at for row in held} == {opening} and len(inproc.ledger()) == 3
    # At the opening the releaser queues the rest, and the host (its clock now 08:00) sends them
    clock[0] = opening.astimezone(dt.UTC)
    assert release_at(inproc, opening).released == 5
    inproc.wait_for(lambda: client.bulk_status(job)["delivered"] == 8, "the rest sent at the opening")
    assert len(inproc.ledger()) == 8


def test_a_fonnte_schedule_is_a_scheduled_send_released_at_that_time(inproc: InProcess) -> None:
    at = int((utcnow() + dt.timedelta(hours=2)).timestamp())
    with inproc.api() as http:
        answer = http.post(
            "/compat/fonnte/send", data={"target": "081234567006|Budi", "message": "Halo {name}", "schedule": str(at)}
        )
    assert answer.status_code == 200, answer.text
    [message_id] = answer.json()["id"]
    due = dt.datetime.fromtimestamp(at, dt.UTC)
    assert client.status(message_id)["status"] == "scheduled" and inproc.broker.history == []

    assert release_at(inproc, due - dt.timedelta(seconds=1)).released == 0
    assert release_at(inproc, due).ids == [message_id]
    inproc.settle(message_id, "delivered")
    assert [e.text for e in inproc.ledger("6281234567006")] == ["Halo Budi"]
