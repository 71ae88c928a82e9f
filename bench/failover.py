"""Failover time: a steady stream of messages to the primary; the primary's connection is dropped
(``SimNet.drop``) and the time to the first message the secondary sends is measured, K times (the
primary is restored, and sends again, between drills). Heartbeat, live-state TTL and failover grace
are the defaults."""

from __future__ import annotations

import itertools
import threading
import time

from bench.harness import Environment, Report, parse_iso, running, summary, wait_until

TEXT = "Layanan internet Anda akan berakhir besok."
PRIMARY, SECONDARY = "f1", "f2"
#: Seconds between two messages of the stream (the resolution of the measurement).
STREAM_EVERY = 0.2
TARGET_P99 = 2.0


def _first_after(stack: object, session: str, after: float, timeout: float) -> float:
    found: list[float] = []

    def seen() -> bool:
        for entry in stack.ledger():  # type: ignore[attr-defined]
            at = parse_iso(entry.at)
            if entry.session == session and at > after:
                found.append(at)
                return True
        return False

    wait_until(seen, timeout, 0.05, f"a message sent by {session}")
    return found[0]


def run(env: Environment, drills: int) -> Report:
    settings = env.settings(
        pace_seconds=0.1,
        pace_jitter_seconds=0.0,
        safety_enabled=False,
        recipient_hourly_cap=0,
        sim_latency_ms=20,
        sim_delivered_after_seconds=3600.0,
        sim_read_after_seconds=3600.0,
    )
    stack = env.stack(settings, "failover")
    stack.add_session(PRIMARY, priority=1)
    stack.add_session(SECONDARY, priority=2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def stream() -> None:
        for i in itertools.count():
            if stop.wait(STREAM_EVERY):
                return
            try:
                stack.client.send(f"0814{i:08d}", text=TEXT)
            except Exception as exc:
                errors.append(exc)
                return

    failover: list[float] = []
    failback: list[float] = []
    with running(stack):
        stack.wait_connected(PRIMARY, SECONDARY, timeout=60)
        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        try:
            _first_after(stack, PRIMARY, 0.0, 30)
            for _ in range(drills):
                time.sleep(1.0)
                dropped_at = time.time()
                stack.simnet.drop(PRIMARY)
                failover.append(_first_after(stack, SECONDARY, dropped_at, 60) - dropped_at)
                time.sleep(1.0)
                restored_at = time.time()
                stack.simnet.restore(PRIMARY)
                failback.append(_first_after(stack, PRIMARY, restored_at, 60) - restored_at)
                stack.check_alive()
        finally:
            stop.set()
            sender.join(5)
        if errors:
            raise errors[0]
        entries = stack.ledger()
    stats = summary(failover)
    duplicates = len(entries) - len({e.to for e in entries})
    report = Report(
        "failover",
        {
            "drills": drills,
            "stream_every_seconds": STREAM_EVERY,
            "pace_seconds": 0.1,
            "heartbeat_seconds": settings.heartbeat_seconds,
            "live_state_ttl_seconds": settings.live_state_ttl_seconds,
            "failover_grace_seconds": settings.failover_grace_seconds,
        },
    )
    report.figures = {
        "drop_to_first_sent_on_secondary_seconds": stats,
        "restore_to_first_sent_on_primary_seconds": summary(failback),
        "messages_sent": len(entries),
        "duplicate_recipients_in_ledger": duplicates,
    }
    report.targets = {"p99 ≤ 2 s": "met" if stats["p99"] <= TARGET_P99 else "missed"}
    return report
