"""The session host follows the session list in the database on its heartbeat: a session added,
removed or changed there is started or stopped, restarted (new transport or options) or given its
new pace, without restarting the host, also when the row is changed by hand in SQL (no ``updated_at``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from support.stack import Stack
from wa_tasks.pipeline import live_state

pytestmark = pytest.mark.integration

#: Test heartbeats are 0.5 s; the bound is generous for a loaded machine, not the promise itself.
WITHIN = 15.0


def _log(stack: Stack) -> str:
    return (stack.logdir / "sessions.log").read_text(errors="replace")


def _wait(stack: Stack, what: str, ok: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        stack.check_alive()
        if ok():
            return
        time.sleep(0.1)
    raise AssertionError(f"the host did not {what} within {WITHIN}s\n{stack.logs()}")


def _by_hand(stack: Stack, sql: str) -> None:
    """As an operator would in psql: a plain statement that does not touch ``updated_at``."""
    with stack.db() as db:
        db.execute(text(sql))


def test_the_host_follows_sessions_added_changed_and_removed_in_the_database(stack: Stack) -> None:
    # Given a session host serving two sessions
    stack.add_session("wa-1", priority=1, pace_seconds=1.0)
    stack.add_session("wa-2", priority=2, options={"latency_ms": 20})
    stack.start("sessions")
    stack.wait_connected("wa-1", "wa-2")
    assert "session wa-1 started (simulated, 1.00s between sends)" in _log(stack)

    # When wa-1's pace is changed by hand, then the host gives the running session its new pace
    # (without reconnecting it)
    _by_hand(stack, "UPDATE whatsapp_sessions SET pace_seconds = 0.25 WHERE session_id = 'wa-1'")
    _wait(stack, "give wa-1 its new pace", lambda: "session wa-1: now 0.25s between sends" in _log(stack))

    # When wa-2's transport options change, then it is restarted (and only it)
    starts_of_wa_2 = _log(stack).count("session wa-2 started")
    _by_hand(
        stack, """UPDATE whatsapp_sessions SET transport_options = '{"latency_ms": 5}' WHERE session_id = 'wa-2'"""
    )
    _wait(
        stack, "restart wa-2 with its new options", lambda: _log(stack).count("session wa-2 started") > starts_of_wa_2
    )
    stack.wait_connected("wa-1", "wa-2")

    # When a session is added, then it is served
    stack.add_session("wa-3", priority=3)
    stack.wait_connected("wa-3", timeout=WITHIN)

    # When a row is deleted by hand, then that session is stopped and no longer reported
    _by_hand(stack, "DELETE FROM whatsapp_sessions WHERE session_id = 'wa-2'")
    stack.wait_down("wa-2", timeout=WITHIN)
    _wait(stack, "stop wa-2", lambda: "wa-2" not in live_state.read(stack.redis, ["wa-2"]))

    # When a session is switched to a transport this host cannot build, then it is stopped and
    # the reason logged; the other sessions keep being served
    _by_hand(stack, "UPDATE whatsapp_sessions SET transport = 'carrier-pigeon' WHERE session_id = 'wa-3'")
    stack.wait_down("wa-3", timeout=WITHIN)
    _wait(stack, "log why wa-3 is not served", lambda: "session wa-3 not started" in _log(stack))
    stack.wait_connected("wa-1")
    assert _log(stack).count("session wa-1 started") == 1  # neither its pace nor others' changes restarted it
