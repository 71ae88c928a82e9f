"""Priority latency: a ``high`` backlog on 2 sessions at the default pace (1 s, jitter 0.3 s), with
``urgent`` messages sent at random times meanwhile: send → ``sent`` latency of the urgent ones."""

from __future__ import annotations

import random
import time

from sqlalchemy import select

from bench.harness import Environment, Report, epoch, numbers, running, summary, wait_until
from models import Message

TEXT = "Tagihan internet bulan ini sudah terbit."
URGENT_TEXT = "Pembayaran Anda Rp150.000 sudah kami terima. Terima kasih."
TARGET_P99 = 2.0


def run(
    env: Environment, n: int, seconds: float, urgent_count: int | None = None, urgent_worker: bool = True
) -> Report:
    settings = env.settings(
        pace_seconds=1.0,
        pace_jitter_seconds=0.3,
        safety_enabled=False,
        recipient_hourly_cap=0,
        routing_policy="balanced",
        sim_latency_ms=150,
    )
    stack = env.stack(settings, "priority")
    sessions = ["h1", "h2"]
    for session_id in sessions:
        stack.add_session(session_id, priority=1)
    # One urgent message per 3 s on average: 2 sessions at ≈1.15 s a send serve ≈1.7 a second, so
    # many more urgent ones would queue behind each other whatever the routing.
    urgent_count = urgent_count or max(5, int(seconds / 3))
    rng = random.Random(8)
    offsets = sorted(rng.uniform(2.0, seconds) for _ in range(urgent_count))
    urgent: dict[str, float] = {}
    processes = ("worker", "urgent", "sessions") if urgent_worker else ("worker", "sessions")
    with running(stack, *processes):
        stack.wait_connected(*sessions, timeout=60)
        bulk_started = time.time()
        job = stack.client.send_bulk([{"whatsapp": x} for x in numbers(n)], text=TEXT, priority="high")
        wait_until(
            lambda: all(stack.queue_length(f"wa.session.{s}") > 0 for s in sessions), 60, 0.1, "a backlog on both"
        )
        started = time.monotonic()
        for i, offset in enumerate(offsets):
            time.sleep(max(0.0, started + offset - time.monotonic()))
            sent_at = time.time()
            message_id = stack.client.send(f"0813{i:08d}", text=URGENT_TEXT, priority="urgent")
            urgent[message_id] = sent_at
        stack.wait_all(list(urgent), "sent", "delivered", "read", timeout=60)
        stack.check_alive()
        with stack.db() as db:
            rows = db.execute(
                select(Message.id, Message.created_at, Message.routed_at, Message.sent_at).where(
                    Message.id.in_(list(urgent))
                )
            ).all()
        high = stack.client.bulk_status(job)
        stack.client.cancel_bulk(job)
    latencies = [epoch(r.sent_at) - urgent[r.id] for r in rows]
    stats = summary(latencies)
    # Where an urgent message waits: routing (the worker, behind the bulk's dispatch batches) or
    # its session's queue (the pace).
    routing = [epoch(r.routed_at) - urgent[r.id] for r in rows if r.routed_at]
    on_session = [epoch(r.sent_at) - epoch(r.routed_at) for r in rows if r.routed_at]
    timeline = sorted((round(urgent[r.id] - bulk_started, 1), round(epoch(r.sent_at) - urgent[r.id], 3)) for r in rows)
    report = Report(
        "priority",
        {
            "high_backlog": n,
            "urgent": urgent_count,
            "seconds": seconds,
            "sessions": len(sessions),
            "pace_seconds": 1.0,
            "jitter_seconds": 0.3,
            "urgent_worker": urgent_worker,
        },
    )
    report.figures = {
        "urgent_send_to_sent_seconds": stats,
        "urgent_send_to_routed_seconds": summary(routing),
        "urgent_routed_to_sent_seconds": summary(on_session),
        "urgent_by_time_after_bulk": [{"sent_at_s": t, "latency_s": lat} for t, lat in timeline],
        "high_sent_meanwhile": high["sent"],
        "high_still_queued": high["queued"],
    }
    report.targets = {"urgent p99 ≤ 2 s": "met" if stats["p99"] <= TARGET_P99 else "missed"}
    return report
