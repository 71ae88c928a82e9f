"""Delivery guarantees on a bad day, against real processes: priorities inside a backlog, two hosts
overlapping on one session, kill -9 of the worker and of the session host mid-bulk, retries and
permanent failures, and the per-recipient cap. Outcomes are checked on the simulated network's
recipient-side ledger."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest
from sqlalchemy import select

from models import Message
from support.stack import FINAL, Stack
from wa_tasks.admin import session_config as manage
from wa_tasks.pipeline import lifecycle, live_state

pytestmark = pytest.mark.integration


def _at(entry_at: str) -> float:
    return dt.datetime.fromisoformat(entry_at).timestamp()


@pytest.mark.timing
def test_urgent_messages_overtake_a_high_backlog_within_two_pacing_slots(stack: Stack) -> None:
    # Given one session at 0.25 s per send with a backlog of 500 high-priority messages
    stack.add_session("wa-1", priority=1, pace_seconds=0.25, options={"latency_ms": 0})
    stack.start()
    stack.wait_connected("wa-1")
    backlog = [{"whatsapp": f"0812{i:08d}", "data": {}} for i in range(500)]
    stack.client.send_bulk(backlog, text="Info gangguan jaringan", priority="high")
    # (every message routed: on a loaded machine the bulk's dispatch can still be routing the
    # backlog when the first sends go out)
    deadline = time.monotonic() + 60
    while (len(stack.ledger()) < 5 or stack.statuses()["queued"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.queue_length("wa.session.wa-1") > 400  # a real backlog sits on the session queue

    # When 5 urgent messages are sent, one at a time
    for i in range(5):
        sent_at = time.time()
        urgent = stack.client.send(f"0813{i:08d}", text=f"Pembayaran {i} diterima", priority="urgent")
        stack.wait_status(urgent, "sent", "delivered", "read", timeout=10)

        # Then each goes out within the next two pacing slots: at most two backlog sends before it
        ledger = stack.ledger()
        mine = next(e for e in ledger if e.text == f"Pembayaran {i} diterima")
        before = [e for e in ledger if e.text == "Info gangguan jaringan" and sent_at <= _at(e.at) < _at(mine.at)]
        assert len(before) <= 2, f"urgent {i} waited behind {len(before)} backlog sends"


@pytest.mark.timing
def test_two_hosts_on_one_session_never_exceed_its_rate(stack: Stack) -> None:
    # Given two session hosts that both serve session wa-1 at 0.5 s per send: leases (which would
    # give it to one host only) are switched off to force the overlap
    stack.env["WA_SESSION_LEASES"] = "false"
    stack.add_session("wa-1", priority=1, pace_seconds=0.5, options={"latency_ms": 0})
    stack.start("worker", "sessions-a", "sessions-b")
    stack.wait_connected("wa-1")

    # When 16 messages are sent
    ids = [stack.client.send(f"0812{i:08d}", text=f"pesan {i}") for i in range(16)]
    stack.wait_all(ids, "sent", "delivered", "read", timeout=60)

    # Then both hosts sent, and no two sends were closer than the pace
    with stack.db() as db:
        assert len(db.scalars(select(Message.id)).all()) == 16
    times = sorted(_at(e.at) for e in stack.ledger())
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 16
    assert min(gaps) >= 0.48, f"two sends {min(gaps):.3f}s apart"
    hosts = _hosts_that_sent(stack)
    assert hosts == {"sessions-a", "sessions-b"}, hosts


def _hosts_that_sent(stack: Stack) -> set[str]:
    found = set()
    for name in ("sessions-a", "sessions-b"):
        log = (stack.logdir / f"{name}.log").read_text()
        if "sent (attempt" in log:
            found.add(name)
    return found


def test_kill_9_of_worker_and_host_mid_bulk_loses_nothing_and_sends_nothing_twice(stack: Stack) -> None:
    # Given a stack whose sweeper republishes stale queued messages quickly
    stack.env["WA_SWEEP_AFTER_SECONDS"] = "2"
    stack.add_session("wa-1", priority=1, pace_seconds=0.02)
    stack.start()
    stack.wait_connected("wa-1")

    # When a 300-message bulk runs and the worker, then the session host, are killed with SIGKILL,
    # while the sweeper runs every second (as beat would)
    with stack.beat("wa.sweep", every=1.0):
        stack.client.send_bulk([{"whatsapp": f"0812{i:08d}", "data": {"n": i}} for i in range(300)], text="x")
        time.sleep(0.3)
        stack.kill("worker")
        kills = 0
        for threshold in (60, 150):
            stack.wait_ledger(threshold)
            stack.kill("sessions")
            kills += 1

        # Then every message ends sent or failed (the sweeper covers lost dispatches), and the
        # receipts of the interrupted sends that reached the phone come
        stack.wait_final(300)
        rows = _wait_receipts(stack)
    statuses = Counter(m.status for m in rows)

    # And nobody got a message twice; the only messages not sent are ambiguous sends (at most one
    # per host kill), which the rule leaves unsent rather than risk a duplicate
    ledger = stack.ledger()
    per_recipient = Counter(e.to for e in ledger)
    assert max(per_recipient.values()) == 1
    failed = [m for m in rows if m.status == "failed"]
    assert all(m.error_message == lifecycle.AMBIGUOUS_SEND for m in failed), [m.error_message for m in failed]
    sent = {m.to_number for m in rows if m.status != "failed"}
    assert sent <= set(per_recipient)
    # And every interrupted send that reached the phone was resolved by its receipt (not resent),
    # and none that did not reach it
    by_receipt = {m.to_number for m in rows if m.confirmed_by == lifecycle.BY_RECEIPT}
    interrupted = by_receipt | {m.to_number for m in failed}
    reached = interrupted & set(per_recipient)
    resolved, wrong = by_receipt & set(per_recipient), by_receipt - set(per_recipient)
    assert len(interrupted) <= kills
    print(
        f"kill drill: {len(ledger)} received, {len(interrupted)} sends interrupted by {kills} host kills: "
        f"{len(reached)} reached the phone, {len(resolved)} of them resolved by their receipt, "
        f"{len(wrong)} resolved wrongly, {len(failed)} left ambiguous (failed, not resent); statuses {statuses}"
    )
    assert resolved == reached and not wrong


def _wait_receipts(stack: Stack, timeout: float = 60.0) -> list[Message]:
    """Every row, once no ambiguous send is on the ledger any more (its receipt resolved it) or
    after ``timeout`` (the caller's check then fails)."""
    deadline = time.monotonic() + timeout
    while True:
        with stack.db() as db:
            rows = list(db.scalars(select(Message)).all())
        received = {e.to for e in stack.ledger()}
        if time.monotonic() > deadline or not any(m.status == "failed" and m.to_number in received for m in rows):
            return rows
        time.sleep(0.5)


def test_transient_errors_retry_with_backoff_then_fail_and_permanent_ones_fail_at_once(stack: Stack) -> None:
    # Given a session whose every send times out, a healthy one, and a number not on WhatsApp
    stack.add_session("flaky", priority=1, options={"failure_rate": 1.0})
    stack.add_session("healthy", priority=2)
    stack.start()
    stack.wait_connected("flaky", "healthy")
    stack.simnet.set_not_on_whatsapp("6281299998888")

    started = time.monotonic()
    flaky = stack.client.send("081234567890", text="Tagihan", session="flaky")
    absent = stack.client.send("0812-9999-8888", text="Tagihan", session="healthy")

    # Then the missing recipient fails at once, after one attempt
    gone = stack.wait_status(absent, "failed", timeout=10)
    assert gone["attempts"] == 1 and "not on WhatsApp" in gone["error"]
    # And the timing-out one fails after 3 attempts, having waited ~2 s and ~4 s between them
    final = stack.wait_status(flaky, "failed", timeout=40)
    elapsed = time.monotonic() - started
    assert final["attempts"] == 3
    assert "timed out waiting for message send response (after 3 attempts)" in final["error"]
    assert elapsed >= 0.75 * (2 + 4)
    assert stack.ledger() == []


def test_no_recipient_gets_more_than_the_hourly_cap(stack: Stack) -> None:
    stack.env["WA_RECIPIENT_HOURLY_CAP"] = "3"
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    ids = [stack.client.send("081234567890", text=f"pengingat {i}") for i in range(5)]
    statuses = stack.wait_all(ids, *FINAL)

    assert len(stack.ledger("6281234567890")) == 3
    refused = [s for s in statuses if s["status"] == "failed"]
    assert len(refused) == 2 and all("recipient_cap" in s["error"] for s in refused)


def test_after_a_463_the_number_leaves_rotation_and_its_backlog_goes_out_on_the_other_once(stack: Stack) -> None:
    # Given ban safety on, a primary whose simulated number WhatsApp restricts after 3 new contacts,
    # and a secondary
    stack.env["WA_SAFETY_ENABLED"] = "true"
    stack.add_session(
        "wa-1",
        priority=1,
        pace_seconds=0.3,
        options={"ban_model": True, "ban_rules": {"young_new_contacts_per_day": 3}},
    )
    stack.add_session("wa-2", priority=2)
    stack.start()
    stack.wait_connected("wa-1", "wa-2")

    # When 10 customers are messaged at once (a backlog builds on the primary)
    ids = [stack.client.send(f"0812{i:08d}", text=f"Tagihan {i}") for i in range(10)]
    statuses = stack.wait_all(ids, "sent", "delivered", "read", timeout=60)

    # Then the primary sent 3, got a 463 on the 4th, left rotation, and the rest went out on wa-2
    by_session = Counter(s["sessionId"] for s in statuses)
    assert by_session == {"wa-1": 3, "wa-2": 7}, by_session
    ledger = stack.ledger()
    assert sorted(e.text for e in ledger) == sorted(f"Tagihan {i}" for i in range(10))  # each exactly once
    state = live_state.read(stack.redis, ["wa-1"])["wa-1"]
    assert state.available_until > time.time() + 3600  # out of rotation for hours
    assert "463" in (stack.logdir / "sessions.log").read_text()

    # And new messages keep going to the secondary
    later = stack.client.send("081300000001", text="Konfirmasi")
    assert stack.wait_status(later, "sent", "delivered", "read")["sessionId"] == "wa-2"


def test_a_new_number_takes_12_new_customers_a_day_and_more_once_the_operator_gives_its_age(stack: Stack) -> None:
    # Given ban safety on, a primary added today without a date (a new number) and a secondary
    # whose number has been on WhatsApp since 2019
    stack.env["WA_SAFETY_ENABLED"] = "true"
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2, number_since=dt.date(2019, 5, 1))
    stack.start()
    stack.wait_connected("wa-1", "wa-2")

    # When 14 customers it never messaged get their bills
    ids = [stack.client.send(f"0812{i:08d}", text=f"Tagihan {i}") for i in range(14)]
    statuses = stack.wait_all(ids, "sent", "delivered", "read", timeout=60)

    # Then the new number takes its new-contact budget of the day (12) and the old one the rest
    assert Counter(s["sessionId"] for s in statuses) == {"wa-1": 12, "wa-2": 2}

    # When the operator says wa-1's number is old too
    manage.update(stack.settings, "wa-1", number_since=dt.date(2020, 1, 1))
    stack.wait_for_log("sessions", "session wa-1: number ", timeout=30)

    # Then the next new customers go through it again, the primary, without a reconnect
    later = [stack.client.send(f"0813{i:08d}", text=f"Tagihan baru {i}") for i in range(3)]
    assert {s["sessionId"] for s in stack.wait_all(later, "sent", "delivered", "read")} == {"wa-1"}
    assert "session wa-1 stopped" not in stack.log_text("sessions")
    assert sorted(e.text for e in stack.ledger()) == sorted(
        [f"Tagihan {i}" for i in range(14)] + [f"Tagihan baru {i}" for i in range(3)]
    )  # each exactly once
