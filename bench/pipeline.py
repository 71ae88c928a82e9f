"""Pipeline overhead: pacing and ban safety off, the simulated transport at zero latency, N messages
over 10 sessions, from ``send_bulk`` to every row ``sent``; and, in the same run, Celery's own no-op
round trip (publish N no-op tasks, a worker with the same pool and concurrency runs them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from bench import noop_app
from bench.harness import ROOT, Environment, Report, epoch, numbers, running, wait_until
from models import Message
from support.stack import Stack
from wa_tasks.infra.celery_app import make_app
from wa_tasks.pipeline import live_state

SESSIONS = 10
TEXT = "Voucher internet Anda aktif. Terima kasih."
TARGET_PER_SECOND = 1000.0
#: The session hosts' CPU a message, all hosts together (done, stretch).
TARGET_HOST_CPU_MS = (2.0, 1.5)
#: Messages a second ÷ Celery's own no-op round trip in the same run (done, stretch).
TARGET_RATIO = (0.6, 1.0)


def noop_round_trip(env: Environment, n: int) -> dict[str, float]:
    """N no-op tasks published in a loop while a worker (threads pool, 2 threads, events on, as
    ``wa-tasks worker``) runs them: tasks per second from the first publish to the last one run."""
    settings = env.settings()
    stack = env.stack(settings, "noop")
    log = (stack.logdir / "noop-worker.log").open("ab")
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.noop_app:app",
        "worker",
        "-Q",
        noop_app.QUEUE,
        "-c",
        "2",
        "-P",
        "threads",
        "-E",
        "-n",
        "noop@%h",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "WARNING",
    ]
    worker = subprocess.Popen(argv, env=stack.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        app = make_app(settings)
        wait_until(
            lambda: any(name.startswith("noop@") for r in app.control.ping(timeout=0.5) or [] for name in r),
            60,
            what="the no-op worker answering",
        )
        task = app.signature("bench.noop", queue=noop_app.QUEUE)
        task.apply_async()  # warm-up
        wait_until(lambda: int(env.redis.get(noop_app.DONE) or 0) == 1, 30, 0.05, "the warm-up no-op task")
        env.redis.delete(noop_app.DONE)
        started = time.perf_counter()
        for _ in range(n):
            task.apply_async()
        published = time.perf_counter() - started
        wait_until(lambda: int(env.redis.get(noop_app.DONE) or 0) >= n, 600, 0.02, "all no-op tasks run")
        total = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)
    return {"publish_seconds": published, "seconds": total, "per_second": n / total}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spread(stack: Stack, sessions: list[str], hosts: int) -> bool:
    """Every session connected, on ``hosts`` hosts, none with more than its fair share."""
    states = live_state.read(stack.redis, sessions)
    per_host = Counter(s.host for s in states.values() if s.connected)
    return (
        sum(per_host.values()) == len(sessions)
        and len(per_host) == hosts
        and max(per_host.values()) <= (-(-len(sessions) // hosts))
    )


def run(env: Environment, n: int, hosts: int = 1, noop_n: int | None = None) -> Report:
    noop = noop_round_trip(env, noop_n or n)

    settings = env.settings(
        pace_seconds=0.0,
        pace_jitter_seconds=0.0,
        safety_enabled=False,
        recipient_hourly_cap=0,
        routing_policy="balanced",
        sim_latency_ms=0,
        # Receipts would add two database updates per message while the benchmark runs; they are
        # not part of send → sent.
        sim_delivered_after_seconds=3600.0,
        sim_read_after_seconds=3600.0,
    )
    stack = env.stack(settings, "pipeline")
    sessions = [f"s{i:02d}" for i in range(SESSIONS)]
    for session_id in sessions:
        # 1 ms is the floor of the Redis pace slot anyway; a pace of exactly 0 would make the
        # balanced policy see every backlog as a wait of 0 and route everything to one session.
        stack.add_session(session_id, priority=1, options={"latency_ms": 0}, pace_seconds=0.001)
    # Several session host processes share the sessions by their leases (each takes a fair share),
    # so that one process's GIL is not the ceiling.
    host_names = ("sessions",) if hosts == 1 else tuple(f"sessions-{chr(ord('a') + i)}" for i in range(hosts))
    with running(stack, "worker", *host_names):
        stack.wait_connected(*sessions, timeout=60)
        if hosts > 1:
            wait_until(lambda: _spread(stack, sessions, hosts), 120, 0.5, f"the sessions spread over {hosts} hosts")
        warm = stack.client.send_bulk([{"whatsapp": x} for x in numbers(20, start=90_000_000)], text=TEXT)
        wait_until(lambda: stack.client.bulk_status(warm)["sent"] == 20, 60, what="the warm-up messages sent")

        cpu_before = {name: cpu_seconds(proc.pid) for name, proc in stack.processes.items()}
        started_wall = time.time()
        started = time.perf_counter()
        job = stack.client.send_bulk([{"whatsapp": x} for x in numbers(n)], text=TEXT, priority="high")
        enqueued = time.perf_counter() - started

        def done() -> bool:
            stack.check_alive()
            progress = stack.client.bulk_status(job)
            return progress["sent"] + progress["failed"] >= n

        wait_until(done, max(120.0, n / 50), 0.5, f"all {n} messages sent")
        cpu = {name: cpu_seconds(proc.pid) - cpu_before.get(name, 0.0) for name, proc in stack.processes.items()}
        with stack.db() as db:
            first_sent, last_sent, last_routed = db.execute(
                select(func.min(Message.sent_at), func.max(Message.sent_at), func.max(Message.routed_at)).where(
                    Message.bulk_job_id == job
                )
            ).one()
            per_session = dict(
                db.execute(
                    select(Message.session_id, func.count())
                    .where(Message.bulk_job_id == job)
                    .group_by(Message.session_id)
                ).all()
            )
        status = stack.client.bulk_status(job)
    seconds = epoch(last_sent) - started_wall
    rate = n / seconds
    report = Report(
        "pipeline",
        {
            "n": n,
            "sessions": SESSIONS,
            "session_hosts": hosts,
            "worker": "threads x2",
            "database": settings.database.split("://", 1)[0],
            "noop_n": noop_n or n,
        },
    )
    report.figures = {
        "send_bulk_seconds": enqueued,
        "seconds_send_to_last_sent": seconds,
        "messages_per_second": rate,
        "messages_per_second_while_sending": n / max(1e-9, epoch(last_sent) - epoch(first_sent)),
        # Where the time goes: the worker's routing (dispatch_batch) ends before the last send only
        # if routing keeps up; CPU seconds of each process over the run, against the 2 cores' wall time.
        "seconds_send_to_last_routed": epoch(last_routed) - started_wall if last_routed else None,
        "cpu_seconds_by_process": {k: round(v, 1) for k, v in cpu.items()},
        # The figure to compare across runs on a shared machine: it moves less with the load than msg/s.
        "cpu_ms_per_message_by_process": {k: round(1000 * v / n, 2) for k, v in cpu.items()},
        "sent": status["sent"],
        "failed": status["failed"],
        "per_session": {str(k): int(v) for k, v in sorted(per_session.items(), key=lambda kv: str(kv[0]))},
        "celery_noop_round_trip_per_second": noop["per_second"],
        "celery_noop_publish_seconds": noop["publish_seconds"],
        "ratio_pipeline_to_noop": rate / noop["per_second"],
    }
    host_ms = 1000 * sum(v for k, v in cpu.items() if k.startswith("sessions")) / n
    ratio = rate / noop["per_second"]

    def grade(met: bool, stretch: bool) -> str:
        return "met (stretch too)" if stretch else "met" if met else "missed"

    report.targets = {
        "≥ 1000 messages/s": "met" if rate >= TARGET_PER_SECOND else "missed",
        f"session host ≤ {TARGET_HOST_CPU_MS[0]:g} CPU-ms a message (stretch ≤ {TARGET_HOST_CPU_MS[1]:g})": grade(
            host_ms <= TARGET_HOST_CPU_MS[0], host_ms <= TARGET_HOST_CPU_MS[1]
        ),
        f"pipeline ÷ no-op round trip ≥ {TARGET_RATIO[0]:g} (stretch ≥ {TARGET_RATIO[1]:g})": grade(
            ratio >= TARGET_RATIO[0], ratio >= TARGET_RATIO[1]
        ),
    }
    return report
