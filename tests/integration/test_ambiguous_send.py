"""Ambiguous sends that resolve themselves (``wa_tasks.pipeline.lifecycle``): the session host killed with
SIGKILL in the middle of a send on the simulated network, after the message reached the phone (its
receipt resolves it) and before (it stays ``failed``, "no receipt seen" after the window); and the
transitions themselves on SQLite and PostgreSQL: a receipt resolves only the one message its id
names, and WhatsApp's acknowledgement arriving after the receipt keeps the status."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import Message, WhatsAppSession
from models.db import session_scope
from support.stack import Stack
from wa_tasks.admin import queue_view
from wa_tasks.core import redis_keys
from wa_tasks.pipeline import lifecycle, outcomes
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def _wait_sending(stack: Stack, message_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stack.client.status(message_id)["status"] != "sending":
        assert time.monotonic() < deadline, f"{message_id} never became sending\n{stack.logs()}"
        time.sleep(0.02)


def test_a_send_interrupted_after_it_reached_the_phone_is_resolved_by_its_receipt(stack: Stack) -> None:
    # Given a session whose sends take 4 s (the network accepts a message after 2 s) and whose
    # phone's delivery receipt comes 10 to 30 s later
    stack.add_session(
        "wa-1", priority=1, options={"latency_ms": 4000, "delivered_after_seconds": 20, "read_after_seconds": 600}
    )
    stack.start()
    stack.wait_connected("wa-1")
    message_id = stack.client.send("081234567890", text="Tagihan Rp150.000 jatuh tempo 5 Desember")

    # When the session host is killed after the message reached the phone, before WhatsApp's
    # acknowledgement came back
    stack.wait_ledger(1)
    assert stack.client.status(message_id)["status"] == "sending"
    stack.kill("sessions")

    # Then the restarted host finds the send interrupted: failed as ambiguous, waiting for a receipt
    failed = stack.wait_status(message_id, "failed", timeout=30)
    assert failed["error"].startswith(lifecycle.AMBIGUOUS_SEND), failed
    assert failed["ambiguousSend"] == lifecycle.AWAITING_RECEIPT
    # And the phone's receipt, held by the network until the session was back, resolves it
    done = stack.wait_status(message_id, "delivered", "read", timeout=60)
    assert done["ambiguousSend"] == lifecycle.RESOLVED_BY_RECEIPT, done
    assert done["error"] is None and done["failedAt"] is None and done["sentAt"] and done["deliveredAt"]
    assert done["waMessageId"] == stack.ledger()[0].wa_message_id
    # And it was not sent again
    assert len(stack.ledger()) == 1


def test_a_send_interrupted_before_it_reached_the_phone_stays_failed_with_no_receipt_seen(
    stack: Stack, settings: Settings
) -> None:
    # Given a session whose sends take 20 s (the network accepts a message after 10 s), and a
    # receipt window of 1 s
    settings.ambiguous_receipt_window_seconds = 1.0
    stack.add_session("wa-1", priority=1, options={"latency_ms": 20_000, "delivered_after_seconds": 0.1})
    stack.start()
    stack.wait_connected("wa-1")
    message_id = stack.client.send("081234567890", text="Tagihan Rp150.000 jatuh tempo 5 Desember")

    # When the session host is killed during the send, before the message reached the network
    _wait_sending(stack, message_id)
    stack.kill("sessions")

    # Then it ends failed as ambiguous, the network never had it (no receipt can come) …
    failed = stack.wait_status(message_id, "failed", timeout=30)
    assert failed["error"].startswith(lifecycle.AMBIGUOUS_SEND), failed
    assert stack.ledger() == [] and stack.simnet.redis.zcard(redis_keys.sim_receipts("wa-1")) == 0
    # … and once the window has passed, the status and the queue list say no receipt was seen
    while (lifecycle.utcnow() - dt.datetime.fromisoformat(failed["failedAt"])).total_seconds() <= 1.0:
        time.sleep(0.1)
    assert stack.client.status(message_id)["ambiguousSend"] == lifecycle.NO_RECEIPT_SEEN
    (row,) = queue_view.list_messages(settings)
    assert row["status"] == "failed" and row["ambiguousSend"] == lifecycle.NO_RECEIPT_SEEN


def _message(settings: Settings, message_id: str, wa_id: str | None, status: str, **values: object) -> None:
    with session_scope(settings.database) as db:
        if _session(db) is None:
            db.add(WhatsAppSession(session_id="wa-1", device_id="WA-1"))
            db.flush()
        db.add(
            Message(
                id=message_id,
                to_number="6281234567890",
                status=status,
                session_id="wa-1",
                wa_message_id=wa_id,
                sending_at=T0,
                **values,
            )
        )


def _session(db: Session) -> WhatsAppSession | None:
    return db.scalar(select(WhatsAppSession).where(WhatsAppSession.session_id == "wa-1"))


def _row(settings: Settings, message_id: str) -> Message:
    with session_scope(settings.database) as db:
        row = db.get(Message, message_id)
        assert row is not None
        db.expunge(row)
        return row


def _receipt(settings: Settings, wa_id: str, kind: str, at: dt.datetime) -> bool:
    with session_scope(settings.database) as db:
        return lifecycle.apply_receipt(db, wa_id, kind, at)


def test_a_receipt_resolves_the_one_unconfirmed_send_its_id_names_and_nothing_else(settings: Settings) -> None:
    ambiguous = {"error_message": lifecycle.AMBIGUOUS_SEND, "failed_at": T0}
    # Given a send in flight, an ambiguous one, two ambiguous ones sharing an id, and a failure
    # that is not ambiguous, each with its WhatsApp id
    _message(settings, "msg_flight", "WA-FLIGHT", "sending")
    _message(settings, "msg_ambiguous", "WA-AMB", "failed", **ambiguous)
    _message(settings, "msg_twin_1", "WA-TWIN", "failed", **ambiguous)
    _message(settings, "msg_twin_2", "WA-TWIN", "failed", **ambiguous)
    _message(settings, "msg_refused", "WA-REFUSED", "failed", error_message="recipient: not on WhatsApp")
    at = T0 + dt.timedelta(seconds=5)

    # When receipts come for each id
    assert _receipt(settings, "WA-FLIGHT", "delivered", at)
    assert _receipt(settings, "WA-AMB", "read", at)
    assert not _receipt(settings, "WA-TWIN", "delivered", at)
    assert not _receipt(settings, "WA-REFUSED", "delivered", at)

    # Then the send in flight is delivered and the ambiguous one read, both confirmed by receipt,
    # sent when their send began
    flight, read = _row(settings, "msg_flight"), _row(settings, "msg_ambiguous")
    assert (flight.status, flight.confirmed_by, flight.sent_at, flight.delivered_at) == ("delivered", "receipt", T0, at)
    assert (read.status, read.confirmed_by, read.read_at, read.delivered_at) == ("read", "receipt", at, at)
    assert read.error_message is None and read.failed_at is None
    assert lifecycle.ambiguity(read) == lifecycle.RESOLVED_BY_RECEIPT
    # And an id on two messages resolves neither (that would be a guess), nor is a refusal resolved
    for message_id in ("msg_twin_1", "msg_twin_2", "msg_refused"):
        assert _row(settings, message_id).status == "failed"
    # And each resolved send counts on its session
    with session_scope(settings.database) as db:
        session = _session(db)
        assert session is not None and session.message_count == 2

    # When WhatsApp's acknowledgement of the send in flight arrives after its receipt
    acked = T0 + dt.timedelta(seconds=1)
    with session_scope(settings.database) as db:
        assert lifecycle.mark_sent(db, "msg_flight", "WA-FLIGHT", acked, "wa-1")
    # Then it keeps its status, takes the acknowledgement's time, and is counted once
    flight = _row(settings, "msg_flight")
    assert (flight.status, flight.confirmed_by, flight.sent_at) == ("delivered", None, acked)
    with session_scope(settings.database) as db:
        session = _session(db)
        assert session is not None and session.message_count == 2


def test_the_claim_stores_the_chosen_id_and_taking_it_back_clears_it(settings: Settings) -> None:
    _message(settings, "msg_1", None, "routed")
    with session_scope(settings.database) as db:
        assert lifecycle.claim_attempts(db, "msg_1", "wa-1", wa_message_id="SIMCHOSEN") == 1
    assert _row(settings, "msg_1").wa_message_id == "SIMCHOSEN"
    with session_scope(settings.database) as db:
        assert lifecycle.unclaim(db, "msg_1", "wa-1")
    assert _row(settings, "msg_1").wa_message_id is None


def test_a_send_is_marked_sent_once_and_counted_once_on_its_session(settings: Settings) -> None:
    # Given a message claimed by session wa-1, which had errors in a row
    _message(settings, "msg_1", None, "routed")
    with session_scope(settings.database) as db:
        db.execute(update(WhatsAppSession).values(error_count=3))
        assert lifecycle.claim_attempts(db, "msg_1", "wa-1", wa_message_id="WA-1") == 1

    # When its send is recorded as the session host records it (a Core connection), then again
    assert outcomes.sent(settings, "msg_1", "WA-1", T0, "wa-1") == outcomes.Outcome.SENT
    with session_scope(settings.database) as db:
        assert not lifecycle.mark_sent(db, "msg_1", "WA-1", T0, "wa-1")

    # Then the message is sent at its time, and the session counts it once, its errors reset
    row = _row(settings, "msg_1")
    assert (row.status, row.wa_message_id, row.sent_at) == ("sent", "WA-1", T0)
    with session_scope(settings.database) as db:
        session = _session(db)
        assert session is not None
        assert (session.message_count, session.error_count, session.last_activity) == (1, 0, T0)
