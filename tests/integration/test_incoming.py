"""Incoming messages through the real stack: stored once with sender, text, time and session,
handed to the registered hook (a Python function or a Celery task), opt-out words applied."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from models import IncomingMessage, OptOut
from sessions_host.transports.simnet import Reply
from support.stack import Stack

pytestmark = pytest.mark.integration


def _wait_rows(stack: Stack, count: int, timeout: float = 30.0) -> list[IncomingMessage]:
    deadline = time.monotonic() + timeout
    rows: list[IncomingMessage] = []
    while time.monotonic() < deadline:
        with stack.db() as db:
            rows = list(db.scalars(select(IncomingMessage).order_by(IncomingMessage.id)))
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"{len(rows)} incoming message(s) stored, expected {count}\n{stack.logs()}")


def test_incoming_messages_are_stored_once_and_handed_to_a_python_hook(stack: Stack, tmp_path: Path) -> None:
    # Given a billing hook (a Python function) and a connected session
    hook_file = tmp_path / "hook.jsonl"
    stack.env.update(
        {
            "WA_INCOMING_HOOK": "python:support.hooks:record",
            "WA_TEST_HOOK_FILE": str(hook_file),
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), stack.env.get("PYTHONPATH", "")]),
        }
    )
    stack.add_session("wa-1", priority=1)
    stack.start("sessions")
    stack.wait_connected("wa-1")

    # When two customers write, one of them twice with the same WhatsApp id (a redelivered event)
    first = stack.simnet.reply("wa-1", "6281234567890", "Kapan teknisi datang?")
    stack.simnet.reply("wa-1", "6281311112222", "STOP")
    rows = _wait_rows(stack, 2)
    stack.simnet.send_reply(
        "wa-1",
        Reply(sender="6281234567890", text="Kapan teknisi datang?", wa_message_id=first, at="2026-11-25T10:00:00Z"),
    )
    time.sleep(1.5)

    # Then each is stored once, with its session, sender, text and time
    rows = _wait_rows(stack, 2)
    assert [(r.session_id, r.sender, r.text) for r in rows] == [
        ("wa-1", "6281234567890", "Kapan teknisi datang?"),
        ("wa-1", "6281311112222", "STOP"),
    ]
    assert rows[0].wa_message_id == first and rows[0].received_at is not None
    # And the hook got each once, and the STOP opted its sender out of promotions
    calls = [json.loads(line) for line in hook_file.read_text().splitlines()]
    assert sorted(c["text"] for c in calls) == ["Kapan teknisi datang?", "STOP"]
    assert {c["message_id"] for c in calls} == {r.id for r in rows}
    with stack.db() as db:
        assert db.scalars(select(OptOut.number)).all() == ["6281311112222"]
    assert stack.simnet.read_receipts() == []  # read receipts are off unless asked for


def test_a_celery_task_hook_receives_incoming_messages_and_read_receipts_go_back(stack: Stack) -> None:
    stack.env.update({"WA_INCOMING_HOOK": "celery:billing.incoming@billing", "WA_MARK_INCOMING_READ": "true"})
    stack.add_session("wa-1", priority=1)
    stack.start("sessions")
    stack.wait_connected("wa-1")

    stack.simnet.reply("wa-1", "6281234567890", "Sudah bayar")
    _wait_rows(stack, 1)

    deadline = time.monotonic() + 10
    while not stack.redis.llen("billing") and time.monotonic() < deadline:
        time.sleep(0.1)
    message = json.loads(stack.redis.lindex("billing", 0))
    assert message["headers"]["task"] == "billing.incoming"
    assert "Sudah bayar" in message["headers"]["kwargsrepr"]
    # And the customer got a read receipt for it
    deadline = time.monotonic() + 10
    while not stack.simnet.read_receipts() and time.monotonic() < deadline:
        time.sleep(0.1)
    [receipt] = stack.simnet.read_receipts()
    assert (receipt["session"], receipt["to"]) == ("wa-1", "6281234567890")
