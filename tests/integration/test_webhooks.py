"""Status callbacks against a real HTTP receiver on loopback (``support.receiver``), real Redis and
a real database (SQLite and PostgreSQL): the signature verifies with the code the docs give; a
receiver answering 500 then 200 gets the event twice with one id and nothing else; a receiver down
then up gets every event, in order per message; a deliverer killed mid-send, or a Redis restarted
empty, loses nothing; and, with the real worker, session host and the deliverer's own worker, a
receiver that takes 10 s to answer does not slow the sends. The logic itself is tested in one process
(``tests/inproc/test_inproc_webhooks.py``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from pydantic import SecretStr
from sqlalchemy import select, update

from models import WebhookEvent, utcnow
from models.db import session_scope
from support.receiver import Receiver
from support.stack import Stack, settings_env
from support.workers import free_port
from wa_tasks.admin import session_config
from wa_tasks.client import Client
from wa_tasks.core import task_names
from wa_tasks.infra.celery_app import make_app
from wa_tasks.infra.redis_client import client_for
from wa_tasks.infra.redis_server import EmbeddedRedis
from wa_tasks.pipeline import lifecycle, webhook_delivery
from wa_tasks.settings import Settings, get_settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@pytest.fixture
def hooked(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_private": True, "webhook_secret": SecretStr(SECRET)})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def docs_verify() -> Callable[..., bool]:
    """The ``verify`` of the Python block of docs/webhooks.md, as a receiver would paste it."""
    [code] = re.findall(r"```python\n(import base64.*?)```", DOCS.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - the documented snippet itself is what is tested
    return namespace["verify"]  # type: ignore[no-any-return]


def send(settings: Settings, url: str, count: int = 1) -> list[str]:
    session_config.add(settings, device_id="WA-1", priority=1)
    wa = Client(settings)
    return [wa.send(f"08123456789{i}", text=f"Tagihan {i}", ref=f"INV-{i}", callback_url=url) for i in range(count)]


def progress(settings: Settings, message_id: str, *, to: str = "read") -> None:
    """What the session host writes as a message is sent and its receipts come: sent, delivered, read."""
    now = utcnow()
    with session_scope(settings.database) as db:
        assert lifecycle.claim(db, message_id, "wa-1")
    with session_scope(settings.database) as db:
        assert lifecycle.mark_sent(db, message_id, f"WA{message_id}", now, "wa-1")
    for kind in ("delivered", "read")[: ("sent", "delivered", "read").index(to)]:
        with session_scope(settings.database) as db:
            assert lifecycle.apply_receipt(db, f"WA{message_id}", kind, now)


def outbox(settings: Settings) -> list[WebhookEvent]:
    with session_scope(settings.database) as db:
        rows = list(db.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))
        db.expunge_all()
        return rows


def deliver(settings: Settings, app: Celery, *, after: dt.timedelta = dt.timedelta(0)) -> webhook_delivery.Delivery:
    """One run of the deliverer (its Redis lock, batches, the HTTP client), ``after`` from now."""
    return webhook_delivery.run(settings, app, run_seconds=0.5, now=lambda: utcnow() + after)


def test_the_event_arrives_signed_and_the_documented_python_verifies_it(hooked: Settings, receiver: Receiver) -> None:
    [message_id] = send(hooked, receiver.url)
    progress(hooked, message_id, to="sent")

    result = deliver(hooked, make_app(hooked))
    assert result.delivered == 1, outbox(hooked)[0].last_error

    [request] = receiver.wait(1)
    assert docs_verify()(SECRET, request.headers, request.body)
    assert not docs_verify()(SECRET, request.headers, request.body.replace(b"sent", b"read"))
    assert request.headers["content-type"] == "application/json"
    assert request.event["messageId"] == message_id and request.event["status"] == "sent"
    assert request.event["id"] == request.headers["webhook-id"] == outbox(hooked)[0].event_id


def test_a_receiver_answering_500_then_200_gets_the_event_twice_with_one_id_and_nothing_else(
    hooked: Settings,
) -> None:
    receiver = Receiver(500).start()
    try:
        [message_id] = send(hooked, receiver.url)
        progress(hooked, message_id, to="sent")
        app = make_app(hooked)

        first = deliver(hooked, app)
        assert (first.failed, first.delivered) == (1, 0)
        assert deliver(hooked, app).as_dict() == {"delivered": 0, "failed": 0, "dead": 0, "deferred": 0}
        second = deliver(hooked, app, after=dt.timedelta(minutes=2))  # past the backoff
        assert second.delivered == 1
        deliver(hooked, app, after=dt.timedelta(hours=2))

        requests = receiver.received
        assert len(requests) == 2
        assert requests[0].body == requests[1].body
        assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
        [row] = outbox(hooked)
        assert (row.state, row.attempts, row.last_error) == ("delivered", 2, None)
    finally:
        receiver.stop()


def test_a_receiver_down_then_up_gets_every_event_afterwards_in_order_per_message(hooked: Settings) -> None:
    receiver = Receiver()  # not started: connections are refused
    messages = send(hooked, receiver.url, count=4)
    for message_id in messages:
        progress(hooked, message_id)
    app = make_app(hooked)

    down = deliver(hooked, app)
    # One attempt to the dead receiver; its other events wait as long, without attempts of their own.
    assert down.failed == 1 and down.delivered == 0
    assert sum(e.attempts for e in outbox(hooked)) == 1

    receiver.start()
    try:
        # A run lasts half a second, and a message's events go one batch after the other (its
        # `delivered` waits for its `sent`): on a loaded machine one run may get through only the
        # first batch, so the deliverer runs again (as beat starts it every second) until all arrive.
        deadline = time.monotonic() + 30
        while len(receiver.events()) < 12 and time.monotonic() < deadline:
            deliver(hooked, app, after=dt.timedelta(minutes=5))
        receiver.wait(12)
        deliver(hooked, app, after=dt.timedelta(hours=1))
    finally:
        receiver.stop()

    events = receiver.events()
    assert {e["id"] for e in events} == {row.event_id for row in outbox(hooked)}
    assert len(events) == 12  # nothing twice: each was delivered at its first answered attempt
    for message_id in messages:
        assert [e["status"] for e in events if e["messageId"] == message_id] == ["sent", "delivered", "read"]
    assert {row.state for row in outbox(hooked)} == {"delivered"}


def test_a_deliverer_killed_mid_send_loses_no_event(hooked: Settings, tmp_path: Path) -> None:
    receiver = Receiver(delay=60).start()
    try:
        [message_id] = send(hooked, receiver.url)
        progress(hooked, message_id, to="sent")
        code = (
            "from wa_tasks.infra.celery_app import make_app; from wa_tasks.pipeline import webhook_delivery; "
            "from wa_tasks.settings import Settings; s = Settings(); "
            "webhook_delivery.run(s, make_app(s), run_seconds=60)"
        )
        log = (tmp_path / "deliverer.log").open("wb")
        child = subprocess.Popen([sys.executable, "-c", code], env=settings_env(hooked), stdout=log, stderr=log)
        try:
            receiver.wait(1, timeout=60)  # the receiver holds the request: the deliverer is mid-send
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        [row] = outbox(hooked)
        assert (row.state, row.attempts) == ("pending", 0)  # claimed, never settled

        receiver.delay = 0
        result = webhook_delivery.deliver_batch(
            hooked,
            make_app(hooked),
            webhook_delivery.make_client(hooked),
            now=lambda: utcnow() + dt.timedelta(seconds=webhook_delivery.LEASE_SECONDS + 1),
        )
        assert result is not None and result.delivered == 1
        first, again = receiver.wait(2)
        assert first.headers["webhook-id"] == again.headers["webhook-id"] == row.event_id
        assert [r.state for r in outbox(hooked)] == ["delivered"]
    finally:
        receiver.stop()


def test_events_survive_a_redis_restart_that_loses_all_its_data(hooked: Settings) -> None:
    # Given a Redis of its own without persistence (a restart loses the deliverer's lock and every
    # queue), events of two messages waiting for a receiver that is down
    directory = Path(tempfile.mkdtemp(prefix="wa-hooks-redis-"))  # short: a Unix socket lives here
    server = EmbeddedRedis(directory, persistent=False, port=free_port())
    server.start()
    receiver = Receiver()
    try:
        own = hooked.model_copy(update={"redis_url": f"redis://127.0.0.1:{server.port}/0"})
        messages = send(own, receiver.url, count=2)
        for message_id in messages:
            progress(own, message_id)
        app = make_app(own)
        assert deliver(own, app).failed == 1

        # When Redis restarts empty and the receiver comes back
        server.stop()
        server.start()
        assert client_for(own.redis).dbsize() == 0
        receiver.start()
        deliver(own, app, after=dt.timedelta(minutes=5))
        receiver.wait(6)
        deliver(own, app, after=dt.timedelta(hours=1))

        # Then every event arrives once, in order per message: the outbox is in the database
        events = receiver.events()
        assert sorted(e["id"] for e in events) == sorted(row.event_id for row in outbox(own))
        assert len(events) == 6
        for message_id in messages:
            assert [e["status"] for e in events if e["messageId"] == message_id] == ["sent", "delivered", "read"]
    finally:
        receiver.stop()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# One backend: the claim is about processes and queues, not the database (the tests above run on both).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_receiver_taking_10_s_to_answer_does_not_slow_the_sends(stack: Stack) -> None:
    receiver = Receiver(delay=10).start()
    try:
        stack.env.update(
            {"WA_STATUS_WEBHOOK_URL": receiver.url, "WA_WEBHOOK_ALLOW_PRIVATE": "true", "WA_WEBHOOK_SECRET": SECRET}
        )
        stack.add_session("wa-1", priority=1)
        stack.start("worker", "sessions", "webhooks")
        stack.wait_connected("wa-1")
        with stack.beat(task_names.DELIVER_WEBHOOKS, every=1.0):
            first = stack.client.send("081234567890", text="Tagihan pertama")
            stack.wait_status(first, "sent", "delivered", "read")
            receiver.wait(1, timeout=30)  # the deliverer now waits on the slow receiver
            started = time.monotonic()
            ids = [stack.client.send(f"0812345678{i:02d}", text=f"Tagihan {i}") for i in range(20)]
            rows = stack.wait_all(ids, "sent", "delivered", "read", timeout=60)
            took = time.monotonic() - started
            print(f"20 sends behind a 10 s receiver took {took:.1f} s")
        # 20 sends at the test pace (0.05 s) take about a second; they finish while the receiver
        # still holds its first request, which it answers only after 10 s.
        assert took < 9.0, f"20 sends took {took:.1f} s behind a slow receiver"
        assert len(rows) == 20
        with session_scope(stack.settings.database) as db:
            statuses = db.scalars(select(WebhookEvent.status).where(WebhookEvent.message_id.in_(ids))).all()
        assert statuses.count("sent") == 20  # every send has its event waiting, none lost
    finally:
        # The deliverer's run would hold a warm shutdown for the rest of its 20 s: killed instead
        # (what a kill leaves is the outbox's to resend, as tested above).
        stack.stop_process("webhooks", signal.SIGKILL)
        receiver.stop()


def test_retention_deletes_delivered_and_dead_events_with_the_old_messages(hooked: Settings) -> None:
    from wa_tasks.ops import retention

    messages = send(hooked, "http://127.0.0.1:9/hook", count=3)
    for message_id in messages:
        progress(hooked, message_id, to="sent")
    delivered, dead, pending = outbox(hooked)
    with session_scope(hooked.database) as db:
        db.execute(update(WebhookEvent).where(WebhookEvent.id == delivered.id).values(state="delivered"))
        db.execute(update(WebhookEvent).where(WebhookEvent.id == dead.id).values(state="dead"))

    later = utcnow() + dt.timedelta(days=hooked.retention_messages_days + 1)
    result = retention.cleanup(hooked, now=later)

    assert result.webhook_events == 2
    assert [e.event_id for e in outbox(hooked)] == [pending.event_id]  # not given up on yet: kept


def test_the_celery_hook_puts_the_event_on_the_billing_queue_of_the_same_broker(
    hooked: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WA_STATUS_HOOK", "celery:billing.on_wa_status@billing")
    get_settings.cache_clear()  # the status change reads the installation's targets from the environment
    try:
        session_config.add(hooked, device_id="WA-1", priority=1)
        message_id = Client(hooked).send("081234567890", text="Tagihan", ref="INV-1")
        progress(hooked, message_id, to="sent")

        assert deliver(hooked, make_app(hooked)).delivered == 1
    finally:
        get_settings.cache_clear()

    redis = client_for(hooked.redis)
    [raw] = redis.lrange("billing", 0, -1)
    message = json.loads(raw)
    assert message["headers"]["task"] == "billing.on_wa_status"
    _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert kwargs["event"]["messageId"] == message_id and kwargs["event"]["status"] == "sent"
    assert kwargs["event"]["ref"] == "INV-1" and kwargs["event"]["id"] == outbox(hooked)[0].event_id
