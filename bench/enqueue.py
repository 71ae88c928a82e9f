"""Enqueue: ``send_bulk`` of N recipients on the database until every row is persisted and every
``wa.dispatch_batch`` published, side by side with a plain loop of N ``apply_async`` of a no-op task
on the same broker. No worker runs: what is measured is the caller's cost only."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import func, select

from bench.harness import Environment, Report, numbers
from models import Message, encryption
from models.db import session_scope
from wa_tasks.client import Client
from wa_tasks.core import redis_keys

TEXT = "Tagihan internet Anda Rp150.000 jatuh tempo 30 November. Terima kasih."
NOOP_QUEUE = "bench.noop"
TARGET_SECONDS = 10.0


def _queue_length(env: Environment, queue: str) -> int:
    return sum(int(env.redis.llen(queue if p == 0 else f"{queue}:{p}")) for p in range(10))


def _clear_queue(env: Environment, queue: str) -> None:
    env.redis.delete(queue, *(f"{queue}:{p}" for p in range(1, 10)))


def run(env: Environment, n: int, profile: bool, encrypted: bool = True) -> Report:
    # Encryption at rest on, as in production (the embedded default configures a key file too).
    encryption.configure([Fernet.generate_key().decode()] if encrypted else [])
    settings = env.settings()
    client = Client(settings)
    app = client.app

    @app.task(name="bench.noop")
    def noop() -> None:
        return None

    recipients = [{"whatsapp": number} for number in numbers(n)]
    # Warm both paths (connections, Celery's lazy setup) so neither pays first-use costs.
    client.send_bulk([{"whatsapp": "081299999999"}], text=TEXT)
    noop.apply_async(queue=NOOP_QUEUE, priority=2)
    _clear_queue(env, NOOP_QUEUE)
    _clear_queue(env, redis_keys.DEFAULT_QUEUE)

    started = time.perf_counter()
    for _ in range(n):
        noop.apply_async(queue=NOOP_QUEUE, priority=2)
    loop_seconds = time.perf_counter() - started
    loop_published = _queue_length(env, NOOP_QUEUE)
    _clear_queue(env, NOOP_QUEUE)

    started = time.perf_counter()
    job_id = client.send_bulk(recipients, text=TEXT, priority="high")
    bulk_seconds = time.perf_counter() - started
    with session_scope(settings.database) as db:
        rows = int(db.scalar(select(func.count()).select_from(Message).where(Message.bulk_job_id == job_id)) or 0)
    batches = _queue_length(env, redis_keys.DEFAULT_QUEUE)
    _clear_queue(env, redis_keys.DEFAULT_QUEUE)

    report = Report(
        "enqueue", {"n": n, "database": settings.database.split("://", 1)[0], "encrypted_at_rest": encrypted}
    )
    report.figures = {
        "send_bulk_seconds": bulk_seconds,
        "send_bulk_rows_persisted": rows,
        "send_bulk_batches_published": batches,
        "send_bulk_messages_per_second": n / bulk_seconds,
        "apply_async_loop_seconds": loop_seconds,
        "apply_async_loop_published": loop_published,
        "apply_async_per_second": n / loop_seconds,
        "ratio_send_bulk_to_loop": bulk_seconds / loop_seconds,
    }
    met_time = bulk_seconds < TARGET_SECONDS * n / 100_000
    report.targets = {
        "send_bulk under 10 s per 100,000 (scaled to N)": "met" if met_time else "missed",
        "send_bulk not slower than the apply_async loop": "met" if bulk_seconds <= loop_seconds else "missed",
    }
    if rows != n or batches != -(-n // 500):
        report.notes.append(f"expected {n} rows and {-(-n // 500)} batches, found {rows} and {batches}")
    if profile:
        report.figures["profile_top"] = _profile(client, min(n, 20_000))
    return report


def _profile(client: Client, n: int) -> list[dict[str, Any]]:
    """Where ``send_bulk`` spends its time: the functions with the most cumulative time."""
    recipients = [{"whatsapp": number} for number in numbers(n, start=50_000_000)]
    profiler = cProfile.Profile()
    profiler.enable()
    client.send_bulk(recipients, text=TEXT, priority="high")
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows: list[dict[str, Any]] = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{filename.rsplit('site-packages/', 1)[-1]}:{line}({function})",
                "calls": calls,
                "own_seconds": round(tottime, 3),
                "cumulative_seconds": round(cumtime, 3),
            }
        )
    rows.sort(key=lambda r: r["cumulative_seconds"], reverse=True)
    print(f"  profile of send_bulk({n}), top cumulative:")
    for r in rows[:25]:
        print(f"    {r['cumulative_seconds']:8.3f} {r['own_seconds']:8.3f} {r['calls']:>9} {r['function']}")
    return [{"profiled_n": n}, *rows[:25]]
