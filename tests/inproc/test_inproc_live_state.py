"""A session's live state, as the session host writes it: when it changes, and again when a write
failed or the host's live report had lapsed; never a status older than the last change (what routing
reads; ``wa_tasks/pipeline/live_state.py``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from models.statuses import SessionStatus
from sessions_host import host as host_module
from support.inproc import InProcess
from wa_tasks.core import redis_keys
from wa_tasks.pipeline import live_state


def test_a_state_whose_write_failed_is_written_on_the_next_heartbeat(
    inproc: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given wa-1 connected, and Redis refusing the write of its next state change
    def refused(*_: Any) -> None:
        raise ConnectionError("Redis unreachable")

    monkeypatch.setattr(host_module.live_state, "publish", refused)
    inproc.simnet.drop("wa-1")
    inproc.wait_for(lambda: inproc.runner("wa-1").status == SessionStatus.DISCONNECTED, "wa-1 dropped", run=False)
    assert inproc.live_status("wa-1") == "connected"  # what routing still reads

    # When Redis answers again and the host's next heartbeat comes
    monkeypatch.undo()
    inproc.host.report_live_states()

    # Then routing reads the change
    assert inproc.live_status("wa-1") == "disconnected"


def test_a_hosts_states_are_written_again_once_its_live_report_had_lapsed(inproc: InProcess) -> None:
    # Given the host's live report and wa-1's state gone (the host paused past the TTL, or Redis restarted empty)
    inproc.redis.delete(redis_keys.host_live(inproc.host.hostname), redis_keys.live_state("wa-1"))
    assert inproc.live_status("wa-1") is None

    # When its next heartbeat comes, its sessions' states count again, as they are now
    inproc.host.report_live_states()
    assert inproc.live_status("wa-1") == "connected"


def test_a_heartbeat_rewriting_every_state_never_overwrites_a_newer_change(
    inproc: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a heartbeat writing all of the host's states again (its report had lapsed), held up
    # after it read wa-1 connected
    inproc.redis.delete(redis_keys.host_live(inproc.host.hostname))
    rewrite = live_state.publish_many
    reading, go_on = threading.Event(), threading.Event()

    def slow_rewrite(client: Any, states: Any) -> None:
        states = list(states)
        reading.set()
        go_on.wait(5)
        rewrite(client, states)

    monkeypatch.setattr(host_module.live_state, "publish_many", slow_rewrite)
    heartbeat = threading.Thread(target=inproc.host.report_live_states)
    heartbeat.start()
    assert reading.wait(5)

    # When wa-1 disconnects meanwhile and its change is written
    runner = inproc.runner("wa-1")

    def change() -> None:
        runner.set_status(SessionStatus.DISCONNECTED)
        inproc.host._publish_quietly(runner)

    changed = threading.Thread(target=change)
    changed.start()
    time.sleep(0.2)  # the change's write, were it not held back, lands now: before the heartbeat's
    go_on.set()
    heartbeat.join(5)
    changed.join(5)

    # Then routing reads the change, not the heartbeat's older view
    assert inproc.live_status("wa-1") == "disconnected"
