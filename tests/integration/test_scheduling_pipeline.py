"""Scheduled messages and notices on the real pipeline: a worker running the releaser (sent as beat
sends it), a session host and the simulated network, checked against what the customers' phones
received (the network's ledger)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models import Message, utcnow
from support.stack import Stack

pytestmark = pytest.mark.integration

TEXT = "Tagihan internet Anda Rp150.000 jatuh tempo besok."


def _iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.timing
def test_a_scheduled_message_is_sent_at_its_time(stack: Stack) -> None:
    # Given a connected session and the releaser running every half second
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    with stack.beat("wa.release", every=0.5):
        # When a message is scheduled 6 s from now
        send_at = (utcnow() + dt.timedelta(seconds=6)).replace(microsecond=0)
        message_id = stack.client.send("0812-3456-7001", text=TEXT, send_at=send_at)

        # Then it waits scheduled, nothing of it reaches the phone early
        assert stack.client.status(message_id)["status"] == "scheduled"
        time.sleep(max(0.0, (send_at - utcnow()).total_seconds() - 1.5))
        assert stack.client.status(message_id)["status"] == "scheduled"
        assert stack.ledger("6281234567001") == []

        # And it is sent at its time (within 2 s), once
        status = stack.wait_status(message_id, "sent", "delivered", "read", timeout=30)
    sent_at = _iso(status["sentAt"])
    assert abs((sent_at - send_at).total_seconds()) <= 2.0, (sent_at, send_at)
    assert [e.text for e in stack.ledger("6281234567001")] == [TEXT]


def test_a_message_not_sent_by_its_expiry_expires_and_is_never_sent_late(stack: Stack) -> None:
    # Given a worker running the releaser but no session host yet
    stack.add_session("wa-1", priority=1)
    stack.start("worker")
    with stack.beat("wa.release", every=0.5):
        # When one message that expires in 3 s is sent, and one scheduled for 1 s that expires in 3 s
        expires = utcnow() + dt.timedelta(seconds=3)
        waiting = stack.client.send("0812-3456-7002", text=TEXT, expires_at=expires)
        scheduled = stack.client.send(
            "0812-3456-7003", text=TEXT, send_at=utcnow() + dt.timedelta(seconds=1), expires_at=expires
        )

        # Then both expire (the session is down until after their expiry)
        stack.wait_status(waiting, "expired", timeout=20)
        stack.wait_status(scheduled, "expired", timeout=20)

        # And when the session host starts, neither is sent
        stack.start("sessions")
        stack.wait_connected("wa-1")
        control = stack.client.send("0812-3456-7004", text=TEXT)
        stack.wait_status(control, "sent", "delivered", "read")
    assert stack.client.status(waiting)["status"] == "expired"
    assert stack.client.status(scheduled)["expiredAt"] is not None
    assert stack.ledger("6281234567002") == [] and stack.ledger("6281234567003") == []


def test_payment_cancels_the_waiting_reminders_while_the_one_being_sent_still_goes(stack: Stack) -> None:
    # Given a session whose sends take 4 s, a reminder of INV-7 being sent on it, and two more
    # reminders of INV-7 scheduled for tomorrow
    stack.client.install_default_templates()
    stack.add_session("wa-1", priority=1, options={"latency_ms": 4000})
    stack.start()
    stack.wait_connected("wa-1")
    data = {
        "customer_name": "Budi",
        "invoice_number": "INV-7",
        "amount": 150000,
        "due_date": "2026-12-05",
        "payment_url": "https://isp.example/pay/INV-7",
    }
    tomorrow = utcnow() + dt.timedelta(days=1)
    sending = stack.client.send(
        "0812-3456-7005", template="payment_reminder", data=data, ref="INV-7", notice_key="invoice:INV-7:reminder:H-1"
    )
    later = [
        stack.client.send(
            "0812-3456-7005",
            template="payment_reminder",
            data=data,
            ref="INV-7",
            notice_key=f"invoice:INV-7:reminder:{step}",
            send_at=tomorrow + dt.timedelta(hours=i),
        )
        for i, step in enumerate(("H0", "H+1"))
    ]
    stack.wait_status(sending, "sending", timeout=30)

    # When the payment callback reports the invoice paid
    paid = stack.client.notify(
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

    # Then the waiting reminders are cancelled, the one being sent goes, and so does the confirmation
    assert [stack.client.status(i)["status"] for i in later] == ["cancelled", "cancelled"]
    stack.wait_status(sending, "sent", "delivered", "read", timeout=30)
    stack.wait_status(paid, "sent", "delivered", "read", timeout=30)
    texts = [e.text for e in stack.ledger("6281234567005")]
    assert len(texts) == 2 and "INV-7" in texts[0]


def test_a_window_that_closes_mid_bulk_holds_the_rest_for_its_next_opening(stack: Stack) -> None:
    # Given reminders allowed from an hour ago until the next whole minute at least 12 s away (WIB)
    wib = ZoneInfo("Asia/Jakarta")
    now = utcnow().astimezone(wib)
    end = (now + dt.timedelta(seconds=12 + 60)).replace(second=0, microsecond=0)
    start = (now - dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    stack.env["WA_WINDOW_REMINDER"] = f"{start:%H:%M}-{end:%H:%M}"
    stack.env["WA_TIMEZONE"] = "Asia/Jakarta"
    stack.client.install_default_templates()
    stack.add_session("wa-1", priority=1, pace_seconds=1.0, options={"latency_ms": 20})
    stack.start()
    stack.wait_connected("wa-1")

    # When a bulk of reminders longer than what is left of the window goes out at one a second
    left = (end - utcnow()).total_seconds()
    count = int(left) + 20
    job = stack.client.send_bulk(
        [{"whatsapp": f"0812-7000-{i:04d}", "data": {"customer_name": f"C{i}"}} for i in range(count)],
        template="payment_reminder",
        template_data={"invoice_number": "INV-B", "amount": 150000, "due_date": "2026-12-05", "payment_url": "x"},
        priority="normal",
    )

    # Then what was left when the window closed waits scheduled for its next opening: not sent, not failed
    def settled() -> bool:
        progress = stack.client.bulk_status(job)
        return progress["sent"] + progress["scheduled"] == count and utcnow() > end

    deadline = time.monotonic() + left + 60
    while not settled():
        assert time.monotonic() < deadline, f"{stack.client.bulk_status(job)}\n{stack.logs()}"
        time.sleep(0.5)
    progress = stack.client.bulk_status(job)
    assert progress["failed"] == 0 and progress["sent"] >= 3 and progress["scheduled"] >= 10
    with stack.db() as db:
        rows = db.execute(
            select(Message.status, Message.sent_at, Message.send_at).where(Message.bulk_job_id == job)
        ).all()
    opening = dt.datetime.combine(end.date(), start.time(), tzinfo=wib)
    if opening <= end:
        opening += dt.timedelta(days=1)
    for status, sent_at, send_at in rows:
        if status == "scheduled":
            assert send_at == opening, (send_at, opening)
        else:
            assert sent_at is not None and sent_at <= end + dt.timedelta(seconds=1), sent_at
    assert len(stack.ledger()) == progress["sent"]


def test_a_ladder_scheduled_twice_sends_one_message_per_step(stack: Stack) -> None:
    # Given reminders allowed at any hour, and a ladder whose H-1 falls 10 s from now (``at`` as a
    # time of day with seconds, which the client takes besides "HH:MM": no wait for a whole minute)
    stack.env["WA_WINDOW_REMINDER"] = "always"
    stack.client.install_default_templates()
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    wib = ZoneInfo("Asia/Jakarta")
    at = (utcnow().astimezone(wib) + dt.timedelta(seconds=10)).replace(microsecond=0)
    due = (at + dt.timedelta(days=1)).date()
    data = {"customer_name": "Sari", "amount": 175000, "payment_url": "https://isp.example/pay/INV-L"}

    with stack.beat("wa.release", every=0.5):
        # When billing's cron schedules it twice
        first = stack.client.schedule_reminders(
            "INV-L", "0812-3456-7010", due, ladder=("H-1", "H0"), at=at.time(), data=data
        )
        second = stack.client.schedule_reminders(
            "INV-L", "0812-3456-7010", due, ladder=("H-1", "H0"), at=at.time(), data=data
        )
        assert first == second

        # Then H-1 is sent once at its time, and H0 waits for tomorrow
        status = stack.wait_status(first["H-1"], "sent", "delivered", "read", timeout=120)
    assert abs((_iso(status["sentAt"]) - at).total_seconds()) <= 2.0
    assert stack.client.status(first["H0"])["status"] == "scheduled"
    received = stack.ledger("6281234567010")
    assert len(received) == 1 and "INV-L" in received[0].text
