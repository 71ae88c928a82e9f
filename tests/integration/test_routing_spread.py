"""Balanced routing on a real stack: a stream shares idle sessions instead of piling on the first."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_stream_slower_than_the_sessions_pace_is_shared_by_the_idle_sessions(stack: Stack) -> None:
    # Given four sessions of different priorities with the balanced policy, each sending every 0.6 s
    stack.env["WA_ROUTING_POLICY"] = "balanced"
    sessions = ["wa-1", "wa-2", "wa-3", "wa-4"]
    for priority, session_id in enumerate(sessions, start=1):
        stack.add_session(session_id, priority=priority, pace_seconds=0.6)
    stack.start()
    stack.wait_connected(*sessions)

    # When a stream of messages arrives, one every 0.2 s (so some sessions are always idle)
    total = 80
    for i in range(total):
        stack.client.send(f"0812{i:08d}", text=f"Tagihan {i}")
        time.sleep(0.2)
    stack.wait_ledger(total)

    # Then every session sends at least half its fair share
    counts = Counter(entry.session for entry in stack.ledger())
    assert sum(counts.values()) == total
    assert min(counts.get(s, 0) for s in sessions) >= total / len(sessions) / 2, counts
