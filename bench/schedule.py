"""Scheduling: N messages scheduled for the same instant (one ``send_bulk`` with ``send_at``), released
by the real beat (``wa.release`` every second) and worker, sent by 10 sessions at a 1 s pace:
seconds from the due time to every message released and to every one routed, the worker's CPU
meanwhile, and the latency (``client.send`` → ``sent``) of urgent messages sent while it happens.
Nothing lost (every row of the job accounted for) and nothing released twice (the releaser's own
count equals N).

By default the release is not spread (``WA_RELEASE_AHEAD_SECONDS=0``), to measure how fast the
releaser and the routing go; ``--spread`` keeps the default (60 s of the sessions' sending ahead)
and reports how much was released during the run instead."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from sqlalchemy import func, select

from bench.harness import Environment, Report, epoch, numbers, running, summary
from bench.pipeline import cpu_seconds
from models import Message
from wa_tasks.core import redis_keys

SESSIONS = 10
TEXT = "Tagihan internet bulan ini jatuh tempo besok."
URGENT_TEXT = "Pembayaran Anda Rp150.000 sudah kami terima. Terima kasih."
TARGET_URGENT_P99 = 2.0


def _counts(stack: object, job: str) -> dict[str, int]:
    with stack.db() as db:  # type: ignore[attr-defined]
        return {
            str(status): int(count)
            for status, count in db.execute(
                select(Message.status, func.count()).where(Message.bulk_job_id == job).group_by(Message.status)
            ).all()
        }


def run(env: Environment, n: int, spread: bool = False, observe_seconds: float = 60.0) -> Report:
    settings = env.settings(
        pace_seconds=1.0,
        pace_jitter_seconds=0.0,
        safety_enabled=False,
        recipient_hourly_cap=0,
        routing_policy="balanced",
        sim_latency_ms=150,
        sim_delivered_after_seconds=3600.0,
        sim_read_after_seconds=3600.0,
        release_interval_seconds=1.0,
        release_ahead_seconds=60.0 if spread else 0.0,
        log_level=os.environ.get("WA_BENCH_LOG_LEVEL", "WARNING"),
    )
    stack = env.stack(settings, "schedule")
    sessions = [f"s{i:02d}" for i in range(SESSIONS)]
    for session_id in sessions:
        stack.add_session(session_id, priority=1)
    urgent: dict[str, float] = {}
    stop_urgent = threading.Event()

    def send_urgent() -> None:
        i = 0
        while not stop_urgent.wait(0.5):
            sent_at = time.time()
            urgent[stack.client.send(f"0813{i:08d}", text=URGENT_TEXT, priority="urgent")] = sent_at
            i += 1

    with running(stack, "worker", "urgent", "sessions", "beat"):
        stack.wait_connected(*sessions, timeout=60)
        # Due a little after the enqueue is done (about 10,000 rows a second), on a whole second.
        lead = 15.0 + n / 8000
        due = dt.datetime.fromtimestamp(int(time.time() + lead), dt.UTC)
        started = time.perf_counter()
        job = stack.client.send_bulk([{"whatsapp": x} for x in numbers(n)], text=TEXT, priority="high", send_at=due)
        enqueue_seconds = time.perf_counter() - started
        if time.time() >= due.timestamp():
            raise SystemExit(f"the enqueue took {enqueue_seconds:.1f} s, past the due time; raise the lead")
        time.sleep(max(0.0, due.timestamp() - 3.0 - time.time()))
        worker_pid = stack.processes["worker"].pid
        cpu_before = cpu_seconds(worker_pid)
        thread = threading.Thread(target=send_urgent, daemon=True)
        thread.start()
        all_released = all_routed = None
        deadline = due.timestamp() + (observe_seconds if spread else max(120.0, n / 50))
        while time.time() < deadline:
            stack.check_alive()
            counts = _counts(stack, job)
            now = time.time()
            if all_released is None and counts.get("scheduled", 0) == 0:
                all_released = now
            if all_routed is None and counts.get("scheduled", 0) + counts.get("queued", 0) == 0:
                all_routed = now
                break
            time.sleep(0.25)
        cpu = cpu_seconds(worker_pid) - cpu_before
        busy_seconds = (all_routed or time.time()) - (due.timestamp() - 3.0)
        time.sleep(3.0)  # urgent sends after the last routing too
        stop_urgent.set()
        thread.join(30)
        stack.wait_all(list(urgent), "sent", "delivered", "read", timeout=120)
        counts = _counts(stack, job)
        released_total = int(stack.redis.get(redis_keys.RELEASED_TOTAL) or 0)
        with stack.db() as db:
            urgent_rows = db.execute(select(Message.id, Message.sent_at).where(Message.id.in_(list(urgent)))).all()
            first_routed, last_routed = db.execute(
                select(func.min(Message.routed_at), func.max(Message.routed_at)).where(Message.bulk_job_id == job)
            ).one()
        stack.client.cancel_bulk(job)
    latencies = [epoch(r.sent_at) - urgent[r.id] for r in urgent_rows]
    stats = summary(latencies)
    accounted = sum(counts.values())
    report = Report(
        "schedule",
        {
            "n": n,
            "sessions": SESSIONS,
            "pace_seconds": 1.0,
            "release_ahead_seconds": settings.release_ahead_seconds,
            "release_interval_seconds": settings.release_interval_seconds,
            "worker": "threads x2, and the urgent worker",
            "database": settings.database.split("://", 1)[0],
        },
    )
    report.figures = {
        "send_bulk_seconds": enqueue_seconds,
        "seconds_due_to_all_released": (all_released - due.timestamp()) if all_released else None,
        "seconds_due_to_all_routed": (all_routed - due.timestamp()) if all_routed else None,
        "seconds_due_to_first_routed": epoch(first_routed) - due.timestamp() if first_routed else None,
        "seconds_due_to_last_routed": epoch(last_routed) - due.timestamp() if last_routed else None,
        "worker_cpu_seconds": round(cpu, 1),
        "worker_cpu_share_of_one_core": round(cpu / busy_seconds, 2),
        "urgent_send_to_sent_seconds": stats,
        "rows_of_the_job": accounted,
        "by_status_at_end": counts,
        "released_by_the_releaser": released_total,
    }
    report.targets = {
        "urgent p99 ≤ 2 s": "met" if stats["p99"] <= TARGET_URGENT_P99 else "missed",
        "nothing lost": "met" if accounted == n else "missed",
        "nothing released twice": "met" if released_total <= n else "missed",
    }
    if not spread:
        report.targets["every message routed"] = "met" if all_routed else "missed"
    return report
