"""Urgent messages have a dispatch queue of their own (``wa.urgent``) and a worker kept for it, so
that they are routed at once even while the main worker is busy with a bulk's batches; and an
urgent message goes to the session that will send it soonest."""

from __future__ import annotations

import pytest

from support.stack import Stack
from wa_tasks.core import redis_keys
from wa_tasks.pipeline import outcomes

pytestmark = pytest.mark.integration


def test_urgent_dispatches_have_their_own_queue() -> None:
    assert outcomes.dispatch_queue(0) == redis_keys.URGENT_QUEUE
    assert {outcomes.dispatch_queue(p) for p in range(1, 10)} == {redis_keys.DEFAULT_QUEUE}


def test_the_urgent_worker_alone_routes_urgent_messages_and_nothing_else(stack: Stack) -> None:
    # Given a session host and only the worker kept for urgent dispatches (the main one is not running)
    stack.add_session("wa-1", priority=1)
    stack.start("urgent", "sessions")
    stack.wait_connected("wa-1")
    # When an urgent and a normal message are sent
    normal = stack.client.send("081234567891", text="Tagihan bulan ini sudah terbit.")
    urgent = stack.client.send("081234567890", text="Pembayaran diterima.", priority="urgent")
    # Then the urgent one is sent, and the normal one waits for the main worker on wa.default
    assert stack.wait_status(urgent, "sent", "delivered", "read", timeout=60)["sessionId"] == "wa-1"
    assert stack.client.status(normal)["status"] == "queued"
    assert stack.queue_length(redis_keys.DEFAULT_QUEUE) == 1
    # And once the main worker runs (it consumes wa.urgent too), the normal one goes out
    stack.start_process("worker")
    stack.wait_status(normal, "sent", "delivered", "read", timeout=60)


def test_two_urgent_messages_a_moment_apart_go_to_two_sessions(stack: Stack) -> None:
    # Given two equal sessions at a slow pace, with the balanced policy
    stack.env["WA_ROUTING_POLICY"] = "balanced"  # the worker's setting
    stack.add_session("wa-1", priority=1, pace_seconds=3.0)
    stack.add_session("wa-2", priority=1, pace_seconds=3.0)
    stack.start()
    stack.wait_connected("wa-1", "wa-2")
    # When two urgent messages are sent one right after the other
    first = stack.client.send("081234567890", text="Pembayaran diterima.", priority="urgent")
    stack.wait_status(first, "sent", "delivered", "read", timeout=30)
    second = stack.client.send("081234567891", text="Voucher aktif.", priority="urgent")
    # Then the second does not wait for the first one's session's pace slot: it goes to the other
    second_session = stack.wait_status(second, "sent", "delivered", "read", timeout=30)["sessionId"]
    assert second_session != stack.client.status(first)["sessionId"]
