"""Status callbacks: N status events (N/2 messages, each ``sent`` then ``delivered``) written by
the bench as the session host writes them, delivered by the real deliverer (its own worker process,
``wa.deliver_webhooks`` sent every second as beat would) to a threaded HTTP receiver on loopback,
signed. Figures: events a second delivered, and the delay from the status change (the event's
``timestamp``) to its receipt, p50/p99; then the same with the receiver down while the events are
written and back some seconds later. Every event is checked received, in order per message."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from bench.harness import Environment, Report, numbers, parse_iso, running, summary, wait_until
from models import Message, WebhookEvent, utcnow
from models.db import session_scope
from wa_tasks.admin import session_config
from wa_tasks.core import task_names
from wa_tasks.pipeline import lifecycle
from wa_tasks.settings import Settings, get_settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.receiver import Receiver  # noqa: E402

TEXT = "Tagihan internet bulan ini jatuh tempo besok."
DOWN_SECONDS = 15.0


def _messages(settings: Settings, stack: object, count: int) -> list[str]:
    job = stack.client.send_bulk([{"whatsapp": x} for x in numbers(count)], text=TEXT, priority="high")  # type: ignore[attr-defined]
    with session_scope(settings.database) as db:
        return list(
            db.scalars(Message.__table__.select().with_only_columns(Message.id).where(Message.bulk_job_id == job))
        )


def _write_statuses(settings: Settings, ids: list[str]) -> float:
    """``sent`` then ``delivered`` for each message, one transaction per change, as the session host
    writes them; returns the seconds it took."""
    started = time.perf_counter()
    for message_id in ids:
        with session_scope(settings.database) as db:
            lifecycle.claim(db, message_id, "wa-1")
            lifecycle.mark_sent(db, message_id, f"WA{message_id}", utcnow(), "wa-1")
    for message_id in ids:
        with session_scope(settings.database) as db:
            lifecycle.apply_receipt(db, f"WA{message_id}", "delivered", utcnow())
    return time.perf_counter() - started


def _settled(settings: Settings, ids: list[str]) -> bool:
    with session_scope(settings.database) as db:
        pending = db.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.message_id.in_(ids), WebhookEvent.state != "delivered")
        )
    return not pending


def _figures(receiver: Receiver, expected: int, ids: list[str], since: Callable[[], float]) -> dict[str, object]:
    received = list(receiver.received)
    events = [r.event for r in received]
    delays = [r.at - parse_iso(r.event["timestamp"]) for r in received]
    by_message: dict[str, list[str]] = {}
    for event in events:
        by_message.setdefault(event["messageId"], []).append(event["status"])
    in_order = all(statuses == ["sent", "delivered"] for statuses in by_message.values()) and len(by_message) == len(
        ids
    )
    first, last = min(r.at for r in received), max(r.at for r in received)
    return {
        "events": expected,
        "received": len(received),
        "distinct_ids": len({e["id"] for e in events}),
        "in_order_per_message": in_order,
        "delivery_events_per_second": round(len(received) / max(last - first, 1e-6), 1),
        "status_change_to_receipt_seconds": summary(delays),
        "seconds_to_all_received": round(last - since(), 2),
    }


def run(env: Environment, n: int) -> Report:
    messages = max(1, n // 2)
    receiver = Receiver()
    settings = env.settings(
        status_webhook_url=receiver.url,
        webhook_allow_private=True,
        webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        log_level=os.environ.get("WA_BENCH_LOG_LEVEL", "WARNING"),
    )
    # The bench writes the status changes itself: its own settings must name the webhook too.
    os.environ.update({"WA_STATUS_WEBHOOK_URL": receiver.url, "WA_WEBHOOK_ALLOW_PRIVATE": "true"})
    get_settings.cache_clear()
    stack = env.stack(settings, "webhooks")
    session_config.add(settings, device_id="WA-1", priority=1)
    report = Report("webhooks", {"n": 2 * messages, "messages": messages, "concurrency": settings.webhook_concurrency})
    with running(stack, "webhooks"), stack.beat(task_names.DELIVER_WEBHOOKS, every=1.0):
        # Receiver up: events are delivered as they are written.
        receiver.start()
        ids = _messages(settings, stack, messages)
        started = time.time()
        write_seconds = _write_statuses(settings, ids)
        wait_until(lambda: len(receiver.received) >= 2 * messages, timeout=600, what="every event received")
        up = _figures(receiver, 2 * messages, ids, lambda: started)
        up["write_events_per_second"] = round(2 * messages / write_seconds, 1)
        # Receiver down while the next batch is written, back DOWN_SECONDS later.
        receiver.stop()
        receiver.received.clear()
        ids = _messages(settings, stack, messages)
        started = time.time()
        write_seconds = _write_statuses(settings, ids)
        time.sleep(max(0.0, DOWN_SECONDS - (time.time() - started)))
        back = time.time()
        receiver.start()
        wait_until(lambda: len(receiver.received) >= 2 * messages, timeout=3600, what="every event received")
        down = _figures(receiver, 2 * messages, ids, lambda: back)
        down["down_seconds"] = round(back - started, 1)
        down["write_events_per_second"] = round(2 * messages / write_seconds, 1)
        wait_until(lambda: _settled(settings, ids), timeout=120, what="every event settled")
        with session_scope(settings.database) as db:
            attempts = db.scalars(select(WebhookEvent.attempts).where(WebhookEvent.message_id.in_(ids))).all()
        down["failed_attempts"] = int(sum(attempts)) - len(attempts)
        receiver.stop()
    report.figures = {"receiver_up": up, "receiver_down_then_back": down}
    report.targets = {
        "every event received once, in order": "met"
        if all(f["distinct_ids"] == f["events"] and f["in_order_per_message"] for f in (up, down))
        else "missed",
    }
    report.notes.append(
        f"status changes written by the bench, one transaction each, at {dt.datetime.now(dt.UTC):%Y-%m-%d}; "
        "seconds_to_all_received: from the first write (up) or from the receiver's return (down)"
    )
    return report
