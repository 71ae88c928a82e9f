"""Pacing accuracy: 5 sessions at 1 message/s (jitter 0) with a backlog that outlasts the run, for T
seconds; achieved rate and the 1-second windows in which a session sent more than once, read from
the simulated network's recipient-side ledger."""

from __future__ import annotations

import math
import time
from collections import defaultdict

from bench.harness import Environment, Report, numbers, parse_iso, running, summary

TEXT = "Pengingat: tagihan internet Anda jatuh tempo besok."
PACE = 1.0


def run(env: Environment, seconds: float, sessions_count: int) -> Report:
    settings = env.settings(
        pace_seconds=PACE,
        pace_jitter_seconds=0.0,
        safety_enabled=False,
        recipient_hourly_cap=0,
        routing_policy="balanced",
        # The ledger stamps a message when the network accepts it, after the simulated latency: a
        # random latency would move the stamps by up to its spread while the sends start exactly
        # one pace apart. At 0 the ledger shows the pacing itself.
        sim_latency_ms=0,
        sim_delivered_after_seconds=3600.0,
        sim_read_after_seconds=3600.0,
    )
    stack = env.stack(settings, "pacing")
    sessions = [f"p{i}" for i in range(sessions_count)]
    for session_id in sessions:
        stack.add_session(session_id, priority=1)
    backlog = int(sessions_count * (seconds + 30) / PACE)
    with running(stack):
        stack.wait_connected(*sessions, timeout=60)
        job = stack.client.send_bulk([{"whatsapp": x} for x in numbers(backlog)], text=TEXT)
        # The window starts at the first send of the run (all sessions start within ~a second).
        deadline = time.monotonic() + seconds + 60
        while not stack.ledger() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(seconds + 3)
        stack.check_alive()
        stack.client.cancel_bulk(job)
        entries = stack.ledger()
    times: dict[str, list[float]] = defaultdict(list)
    for entry in entries:
        times[entry.session].append(parse_iso(entry.at))
    start = min(min(t) for t in times.values())
    end = start + seconds
    in_window = {s: sorted(t for t in ts if start <= t < end) for s, ts in times.items()}
    sent = sum(len(ts) for ts in in_window.values())
    rate = sent / seconds
    expected = sessions_count / PACE
    gaps = [b - a for ts in in_window.values() for a, b in zip(ts, ts[1:], strict=False)]
    # Fixed 1-second windows from the run's start, and sliding ones (two sends of a session less
    # than a second apart: the stricter count).
    crowded_fixed = 0
    for ts in in_window.values():
        counts: dict[int, int] = defaultdict(int)
        for t in ts:
            counts[math.floor(t - start)] += 1
        crowded_fixed += sum(1 for c in counts.values() if c > 1)
    crowded_sliding = sum(1 for g in gaps if g < PACE)
    report = Report(
        "pacing",
        {"sessions": sessions_count, "seconds": seconds, "pace_seconds": PACE, "jitter_seconds": 0.0},
    )
    report.figures = {
        "sent_in_window": sent,
        "messages_per_second": rate,
        "ratio_to_target_rate": rate / expected,
        "per_session": {s: len(ts) for s, ts in sorted(in_window.items())},
        "gap_seconds": summary(gaps),
        "windows_with_more_than_one_send_fixed": crowded_fixed,
        "gaps_under_one_second": crowded_sliding,
    }
    report.targets = {
        "rate ≥ 0.98 of 5/s": "met" if rate >= 0.98 * expected else "missed",
        # The target is stated on fixed windows; sends less than a second apart are reported beside it.
        "no 1-second window with two sends of a session": "met" if crowded_fixed == 0 else "missed",
    }
    return report
