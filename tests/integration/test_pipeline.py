"""End to end through the real pipeline: thin client → wa.dispatch (real Celery worker, Redis
broker) → wa.session.<id> → real session host → simulated transport → database rows, checked
against the simulated network's recipient-side ledger. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from celery import Celery
from sqlalchemy import func, select

from models import Message
from support.stack import Stack

pytestmark = pytest.mark.integration

NUMBER = "6281234567890"


def test_one_message_is_sent_delivered_and_read_once(stack: Stack) -> None:
    # Given a worker and a session host with one connected simulated session
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When billing code sends one message in a format customers write numbers in
    message_id = stack.client.send("0812-3456-7890", text="Tagihan Anda Rp150.000 jatuh tempo 30 November.")

    # Then the row goes sent → delivered → read, with the timestamps of each step
    sent = stack.wait_status(message_id, "sent", "delivered", "read")
    assert sent["sessionId"] == "wa-1"
    assert sent["sentAt"] is not None
    read = stack.wait_status(message_id, "read")
    assert read["deliveredAt"] is not None and read["readAt"] is not None
    assert read["sentAt"] <= read["deliveredAt"] <= read["readAt"]
    assert read["attempts"] == 1 and read["error"] is None
    # And the recipient's phone got exactly one copy, from that session, with that text
    inbox = stack.ledger(NUMBER)
    assert len(inbox) == 1
    assert inbox[0].session == "wa-1"
    assert inbox[0].text == "Tagihan Anda Rp150.000 jatuh tempo 30 November."
    assert inbox[0].wa_message_id == read["waMessageId"]
    assert stack.ledger() == inbox  # nobody else got anything


def test_messages_go_to_the_primary_and_fail_over_when_it_disconnects(stack: Stack) -> None:
    # Given two connected sessions with priorities 1 and 2
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2)
    stack.start()
    stack.wait_connected("wa-1", "wa-2")

    # When messages are sent, they all go through priority 1
    first = [stack.client.send(f"0812345678{i:02d}", text=f"pesan {i}") for i in range(5)]
    for status in stack.wait_all(first, "sent", "delivered", "read"):
        assert status["sessionId"] == "wa-1"

    # When priority 1 disconnects, new messages go through priority 2
    stack.simnet.drop("wa-1")
    stack.wait_down("wa-1")
    stack.wait_connected("wa-2")
    later = [stack.client.send(f"0813345678{i:02d}", text=f"pesan lanjut {i}") for i in range(5)]
    for status in stack.wait_all(later, "sent", "delivered", "read"):
        assert status["sessionId"] == "wa-2"

    # And every message reached its recipient exactly once
    ledger = stack.ledger()
    assert len(ledger) == 10
    assert len({e.wa_message_id for e in ledger}) == 10
    assert sorted(e.session for e in ledger) == ["wa-1"] * 5 + ["wa-2"] * 5


def test_backlog_of_a_dropped_session_moves_to_the_other_session(stack: Stack) -> None:
    # Given a paced primary with a backlog
    stack.add_session("wa-1", priority=1, pace_seconds=0.5)
    stack.add_session("wa-2", priority=2)
    stack.start()
    stack.wait_connected("wa-1", "wa-2")
    ids = [stack.client.send(f"0812000000{i:02d}", text=f"backlog {i}") for i in range(8)]
    stack.wait_status(ids[1], "sent", "delivered", "read")

    # When the primary drops with messages still queued on it
    stack.simnet.drop("wa-1")

    # Then every message is sent, the rest by the secondary, each exactly once
    statuses = stack.wait_all(ids, "sent", "delivered", "read")
    assert {s["sessionId"] for s in statuses} == {"wa-1", "wa-2"}
    ledger = stack.ledger()
    assert sorted(e.text for e in ledger) == sorted(f"backlog {i}" for i in range(8))


@pytest.mark.timing
def test_pacing_spaces_ten_sends_on_one_session_by_at_least_nine_seconds(stack: Stack) -> None:
    # Given a session at the default pace of one message per second (no simulated latency, so the
    # network's acceptance times are the send times)
    stack.add_session("wa-1", priority=1, pace_seconds=1.0, options={"latency_ms": 0})
    stack.start()
    stack.wait_connected("wa-1")

    # When ten messages are queued at once
    ids = [stack.client.send(f"0812555500{i:02d}", text=f"pesan {i}") for i in range(10)]
    stack.wait_all(ids, "sent", "delivered", "read", timeout=60)

    # Then the network accepted them at least nine seconds apart in total, never two within 1 s
    times = sorted(dt.datetime.fromisoformat(e.at) for e in stack.ledger())
    assert len(times) == 10
    assert (times[-1] - times[0]).total_seconds() >= 9.0
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.95


def test_a_repeated_idempotency_key_sends_once(stack: Stack) -> None:
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    first = stack.client.send(NUMBER, text="Pembayaran diterima", idempotency_key="payment-INV-001")
    again = stack.client.send("+62 812 3456 7890", text="Pembayaran diterima", idempotency_key="payment-INV-001")

    assert again == first
    stack.wait_status(first, "read")
    assert len(stack.ledger(NUMBER)) == 1
    with stack.db() as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 1


def test_public_task_names_work_without_importing_wa_tasks(stack: Stack) -> None:
    # A Celery app of another codebase: only the broker URL and the documented task name
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    other = Celery("billing", broker=stack.settings.broker_url)
    other.conf.task_routes = {"wa.*": {"queue": "wa.default"}}

    other.send_task(
        "wa.send", kwargs={"to": "0812-3456-7890", "text": "Voucher aktif", "idempotency_key": "v-1"}, priority=0
    )
    other.send_task("wa.send", kwargs={"to": "not a number", "text": "x", "idempotency_key": "v-2"})

    good = _wait_row(stack, "v-1", ("read",))
    bad = _wait_row(stack, "v-2", ("failed",))
    assert good.priority == 0
    assert bad.error_message is not None and "invalid_phone_number" in bad.error_message
    assert [e.text for e in stack.ledger()] == ["Voucher aktif"]


def _wait_row(stack: Stack, key: str, statuses: tuple[str, ...], timeout: float = 30.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.db() as db:
            row = db.scalar(select(Message).where(Message.idempotency_key == key))
            if row is not None and row.status in statuses:
                return row
        time.sleep(0.1)
    raise AssertionError(f"no message with key {key} reached {statuses}\n{stack.logs()}")


def test_a_message_waits_while_no_session_is_connected(stack: Stack) -> None:
    # Given a session whose connection is down before anything is sent
    stack.add_session("wa-1", priority=1)
    stack.simnet.drop("wa-1")
    stack.start()

    message_id = stack.client.send(NUMBER, text="Menunggu sesi")
    time.sleep(2.0)
    assert stack.client.status(message_id)["status"] == "queued"  # waiting, not dropped, not failed

    # When the session comes back, the message is sent
    stack.simnet.restore("wa-1")
    stack.wait_status(message_id, "sent", "delivered", "read")
    assert len(stack.ledger(NUMBER)) == 1


def test_the_sweeper_dispatches_a_message_whose_publish_was_lost(stack: Stack) -> None:
    # Given a message committed as queued whose dispatch was never published (a crash between the
    # commit and the publish), older than the sweep limit
    stack.add_session("wa-1", priority=1)
    with stack.db() as db:
        db.add(
            Message(
                id="msg_lost",
                to_number=NUMBER,
                content="Pesan yang hampir hilang",
                status="queued",
                priority=5,
                dispatched_at=datetime_minutes_ago(10),
            )
        )
    stack.start()
    stack.wait_connected("wa-1")
    time.sleep(1.0)
    assert stack.client.status("msg_lost")["status"] == "queued"  # nothing else will send it

    # When the beat's sweep task runs
    stack.app.send_task("wa.sweep")

    # Then the message is sent once
    stack.wait_status("msg_lost", "sent", "delivered", "read")
    assert [e.text for e in stack.ledger(NUMBER)] == ["Pesan yang hampir hilang"]


def datetime_minutes_ago(minutes: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
