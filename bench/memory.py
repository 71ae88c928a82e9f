"""Memory: the session host's resident memory (``/proc/<pid>/status`` VmRSS) with no session, then
with N simulated sessions connected and idle."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.harness import Environment, Report, running, wait_until
from wa_tasks.pipeline import live_state


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


def run_neonize(env: Environment, count: int, isolate: bool = True) -> Report:
    """RSS of the child process of each of ``count`` neonize sessions (``isolate: true``, the
    default), constructed offline: the child imports neonize (the Go runtime, whatsmeow), opens its
    SQLite device store and creates the client; its connect then fails (no route to WhatsApp) and it
    waits out the reconnect backoff. That is the idle floor of a neonize session, not what a
    connected one holds (a websocket, Signal sessions, app-state sync: more). With ``isolate``
    false, the clients run in this process instead and what it grows by is measured: the first
    session pays for loading neonize and the Go runtime, the others for their clients."""
    from sessions_host.transports.neonize import NeonizeStore, NeonizeTransport

    events: list[Any] = []
    host_before = _status(os.getpid())
    transports = [
        NeonizeTransport(
            f"mem{i}",
            NeonizeStore.sqlite(env.workdir / "neonize" / f"mem{i}.db"),
            reconnect_base=5.0,
            reconnect_cap=5.0,
            reconnect_attempts=100,
            isolate=isolate,
        )
        for i in range(count)
    ]
    started = time.monotonic()
    try:
        for transport in transports:
            transport.start(events.append)
        wait_until(
            lambda: (
                (not isolate or all(t.pid is not None for t in transports))
                and sum(1 for e in events if getattr(e, "status", None) == "disconnected") >= count
            ),
            120,
            0.2,
            "every neonize child past its first (failing) connect",
        )
        first_failure = time.monotonic() - started
        time.sleep(10)  # idle in the reconnect backoff
        children = [_status(t.pid) for t in transports if t.pid is not None]
        host_after = _status(os.getpid())
        details = sorted(
            {str(getattr(e, "detail", "")) for e in events if getattr(e, "status", None) == "disconnected"}
        )
    finally:
        for transport in transports:
            transport.stop()
    rss = [c["VmRSS"] / 1024 for c in children]
    report = Report(
        "memory_neonize", {"sessions": count, "transport": "neonize", "isolate": isolate, "network": "none"}
    )
    if not isolate:
        grown = (host_after["VmRSS"] - host_before["VmRSS"]) / 1024
        report.figures = {
            "process_rss_mib_before": host_before["VmRSS"] / 1024,
            "process_rss_mib_with_sessions": host_after["VmRSS"] / 1024,
            "rss_mib_per_session": grown / count,
            "process_threads_with_sessions": host_after["Threads"],
            "seconds_until_first_connect_failed": first_failure,
            "connect_errors_seen": details[:3],
        }
        report.notes.append(
            "offline, in this process (isolate: false): what the process grew by, neonize's own "
            "import (the Go runtime) included; a connected client holds more."
        )
        return report
    report.figures = {
        "child_rss_mib": rss,
        "child_rss_mib_mean": sum(rss) / len(rss),
        "child_peak_rss_mib": [c["VmHWM"] / 1024 for c in children],
        "child_threads": [c["Threads"] for c in children],
        "parent_rss_mib_delta": (host_after["VmRSS"] - host_before["VmRSS"]) / 1024,
        "seconds_until_first_connect_failed": first_failure,
        "connect_errors_seen": details[:3],
    }
    report.notes.append(
        "offline: every connect fails (no route to WhatsApp); the child was measured idle in its "
        "reconnect backoff with the client constructed. A connected client holds more."
    )
    return report
