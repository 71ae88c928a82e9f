"""Memory: the session host's resident memory (``/proc/<pid>/status`` VmRSS) with no session, then
with N simulated sessions connected and idle."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.harness import Environment, Report, running, wait_until
from wa_tasks import live_state


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB, and the thread count, of process ``pid``."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return values


def run(env: Environment, count: int) -> Report:
    settings = env.settings(safety_enabled=False, sim_latency_ms=20)
    stack = env.stack(settings, "memory")
    sessions = [f"m{i:03d}" for i in range(count)]
    with running(stack, "sessions"):
        pid = stack.processes["sessions"].pid
        time.sleep(5)
        empty = _status(pid)
        for session_id in sessions:
            stack.add_session(session_id, priority=1)
        started = time.monotonic()

        def all_connected() -> bool:
            stack.check_alive()
            states = live_state.read(stack.redis, tuple(sessions))
            return all(states.get(s) is not None and states[s].connected for s in sessions)

        wait_until(all_connected, 120, 0.5, f"{count} sessions connected")
        connected_after = time.monotonic() - started
        time.sleep(10)  # idle: heartbeats only
        loaded = _status(pid)
    per_session = (loaded["VmRSS"] - empty["VmRSS"]) / count
    report = Report("memory", {"sessions": count, "transport": "simulated"})
    report.figures = {
        "rss_mib_no_session": empty["VmRSS"] / 1024,
        "rss_mib_with_sessions": loaded["VmRSS"] / 1024,
        "peak_rss_mib": loaded["VmHWM"] / 1024,
        "rss_kib_per_session": per_session,
        "threads_no_session": empty["Threads"],
        "threads_with_sessions": loaded["Threads"],
        "open_fds_with_sessions": loaded["fds"],
        "seconds_until_all_connected": connected_after,
    }
    return report
