"""Status callbacks in one process (``tests/support/inproc.py``): every status change writes its
event to the outbox in its own transaction, for each target; the deliverer signs, orders, retries
and gives up; the Celery hook; dead letters and their retry from the client, API and command line.
The same with a real HTTP receiver, Redis and PostgreSQL: ``tests/integration/test_webhooks.py``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from models import Message, WebhookEvent, utcnow
from models.db import session_scope
from sessions_host.transports.base import AmbiguousSendError, RecipientError
from support.inproc import InProcess
from wa_tasks import client
from wa_tasks.core import webhook_rules
from wa_tasks.errors import InvalidCallbackUrl
from wa_tasks.pipeline import lifecycle, webhook_delivery, webhooks

NUMBER = "6281234567890"
URL = "http://billing.example.com/wa/status"
SECRET = "s3cret-for-tests"
#: What the receivers' names resolve to in these tests (a public address; MockTransport sends nothing).
PUBLIC = "93.184.216.34"


def events(inproc: InProcess, message_id: str | None = None) -> list[WebhookEvent]:
    with session_scope(inproc.settings.database) as db:
        query = select(WebhookEvent).order_by(WebhookEvent.id)
        if message_id is not None:
            query = query.where(WebhookEvent.message_id == message_id)
        rows = list(db.scalars(query))
        db.expunge_all()
        return rows


def bodies(inproc: InProcess, message_id: str | None = None) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in events(inproc, message_id)]


class Receiver:
    """An HTTP receiver behind httpx's MockTransport: answers the scripted codes, then 200."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.codes.pop(0) if self.codes else 200)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self), follow_redirects=False)

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def deliver(
    inproc: InProcess, receiver: Receiver, *, at: dt.datetime | None = None
) -> webhook_delivery.Delivery | None:
    return webhook_delivery.deliver_batch(
        inproc.settings,
        inproc.app,
        receiver.client(),
        now=lambda: at or utcnow(),
        resolver=lambda host, port: [PUBLIC],
    )


# Recording -------------------------------------------------------------------------------------------


def test_each_status_change_records_one_event_in_order_with_what_billing_needs(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc(status_webhook_url=URL, sim_read_after_seconds=0.1)
    inproc.add_session("WA-1")
    message_id = client.send(
        NUMBER, text="Tagihan Anda Rp150.000.", idempotency_key="inv-7-created", notice_key="invoice:INV-7", ref="INV-7"
    )
    assert events(inproc) == []  # queued is a step of the way, not an outcome

    view = inproc.settle(message_id, "read")

    rows = events(inproc, message_id)
    assert [e.status for e in rows] == ["sent", "delivered", "read"]
    assert all(e.target == URL and e.state == "pending" for e in rows)
    assert len({e.event_id for e in rows}) == 3
    sent, delivered, read = (json.loads(e.payload) for e in rows)
    assert sent == {
        "id": rows[0].event_id,
        "type": "message.status",
        "messageId": message_id,
        "status": "sent",
        "timestamp": view["sentAt"],
        "idempotencyKey": "inv-7-created",
        "noticeKey": "invoice:INV-7",
        "ref": "INV-7",
        "sessionId": "wa-1",
        "error": None,
    }
    assert (delivered["timestamp"], read["timestamp"]) == (view["deliveredAt"], view["readAt"])


def test_without_a_target_nothing_is_recorded(inproc: InProcess) -> None:
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.")
    inproc.settle(message_id, "delivered")
    assert events(inproc) == []


def test_a_callback_url_gets_the_events_of_its_own_message_only(inproc: InProcess) -> None:
    hooked = client.send(NUMBER, text="Tagihan Anda Rp150.000.", callback_url=" https://billing.example.com/cb?k=1 ")
    plain = client.send("081234567891", text="Tagihan Anda Rp90.000.")
    inproc.settle(hooked, "delivered")
    inproc.settle(plain, "delivered")

    rows = events(inproc)
    assert [(e.message_id, e.status, e.target) for e in rows] == [
        (hooked, "sent", "https://billing.example.com/cb?k=1"),
        (hooked, "delivered", "https://billing.example.com/cb?k=1"),
    ]


def test_every_target_gets_its_own_copy_of_each_event(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url=URL, status_hook="celery:billing.on_status@billing")
    inproc.add_session("WA-1")
    message_id = client.send(NUMBER, text="Halo", callback_url="https://billing.example.com/cb")
    inproc.settle(message_id, "sent")

    rows = [e for e in events(inproc) if e.status == "sent"]
    assert sorted(e.target for e in rows) == sorted(
        [URL, "celery:billing.on_status@billing", "https://billing.example.com/cb"]
    )
    assert len({e.event_id for e in rows}) == 3  # each delivery has its own id


def test_cancelled_expired_and_failed_events_carry_their_reason(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    inproc.add_session("WA-1")
    later = utcnow() + dt.timedelta(hours=1)
    cancelled = client.send(NUMBER, text="Pengingat H-1", send_at=later, ref="INV-8")
    expiring = client.send(NUMBER, text="Pengingat H-3", send_at=later, expires_at=later + dt.timedelta(hours=1))
    assert client.cancel_pending("INV-8") == 1
    with session_scope(inproc.settings.database) as db:
        assert lifecycle.expire_due(db, later + dt.timedelta(hours=2), 100) == 1
    inproc.runner("wa-1").transport.fail_next(RecipientError("the number is not on WhatsApp"))
    failed = client.send("081234567892", text="Halo")
    inproc.settle(failed, "failed")

    [cancel_event] = bodies(inproc, cancelled)
    assert (cancel_event["status"], cancel_event["ref"]) == ("cancelled", "INV-8")
    [expire_event] = bodies(inproc, expiring)
    assert expire_event["status"] == "expired"
    [fail_event] = bodies(inproc, failed)
    assert fail_event["status"] == "failed" and "not on WhatsApp" in fail_event["error"]


def test_an_interrupted_send_is_reported_ambiguous_then_delivered_by_its_receipt(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    inproc.add_session("WA-1", options={"delivered_after_seconds": 0.5})
    transport = inproc.runner("wa-1").transport
    transport.fail_next(AmbiguousSendError("timed out waiting for message send response"), after_send=True)
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.")

    inproc.settle(message_id, "delivered")

    ambiguous, delivered = bodies(inproc, message_id)
    assert ambiguous["status"] == "ambiguous" and ambiguous["error"].startswith(lifecycle.AMBIGUOUS_PREFIX)
    assert delivered["status"] == "delivered" and delivered["error"] is None


def test_the_event_is_written_in_the_transaction_of_the_status_change(
    make_inproc: Callable[..., InProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    message_id = client.send(NUMBER, text="Pengingat", send_at=utcnow() + dt.timedelta(hours=1))
    recorded = webhooks.record

    def record_then_crash(*args: Any, **kwargs: Any) -> int:
        recorded(*args, **kwargs)
        raise RuntimeError("the process died before the commit")

    monkeypatch.setattr(webhooks, "record", record_then_crash)
    with pytest.raises(RuntimeError):
        client.cancel(message_id)

    # Neither the change nor its event: they commit together or not at all.
    assert client.status(message_id)["status"] == "scheduled" and events(inproc) == []
    monkeypatch.setattr(webhooks, "record", recorded)
    assert client.cancel(message_id)
    assert [e.status for e in events(inproc)] == ["cancelled"]


# Callback URLs at the entry points ----------------------------------------------------------------


def test_a_bad_callback_url_is_refused_at_every_entry_point_and_nothing_is_stored(inproc: InProcess) -> None:
    with pytest.raises(InvalidCallbackUrl, match="callbackUrl .*'ftp://billing.example.com/x'"):
        client.send(NUMBER, text="Halo", callback_url="ftp://billing.example.com/x")
    # A private address written out is refused by the settings' rule (WA_WEBHOOK_ALLOW_PRIVATE is off).
    with pytest.raises(InvalidCallbackUrl, match="loopback, private or link-local"):
        client.send(NUMBER, text="Halo", callback_url="http://169.254.169.254/latest/meta-data")
    with inproc.api() as http:
        answer = http.post("/api/whatsapp/send", json={"to": NUMBER, "text": "Halo", "callbackUrl": "gopher://x"})
    assert (
        answer.status_code == 422
        and "callbackUrl" in answer.json()["detail"]
        and "gopher://x" in answer.json()["detail"]
    )
    refused = inproc.cli("send", NUMBER, "--text", "Halo", "--callback-url", "http://10.0.0.7/hook")
    assert refused.exit_code != 0 and "callbackUrl" in refused.output
    with session_scope(inproc.settings.database) as db:
        assert db.scalars(select(Message)).all() == []


def test_the_api_and_the_command_line_take_a_callback_url(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(webhook_allow_private=True)
    inproc.add_session("WA-1")
    with inproc.api() as http:
        answer = http.post(
            "/api/whatsapp/send", json={"to": NUMBER, "text": "Halo", "callbackUrl": "http://127.0.0.1:9000/hook"}
        )
    assert answer.status_code == 202, answer.text
    shown = inproc.cli("send", NUMBER, "--text", "Halo", "--callback-url", "http://127.0.0.1:9000/cli")
    assert shown.exit_code == 0, shown.output
    with session_scope(inproc.settings.database) as db:
        urls = {m.id: m.callback_url for m in db.scalars(select(Message))}
    assert urls == {
        answer.json()["id"]: "http://127.0.0.1:9000/hook",
        shown.output.strip(): "http://127.0.0.1:9000/cli",
    }


# Delivery ----------------------------------------------------------------------------------------------


def test_delivery_is_signed_pinned_to_the_checked_address_and_in_order_per_message(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc(status_webhook_url=URL, webhook_secret=SECRET)
    inproc.add_session("WA-1")
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.")
    inproc.settle(message_id, "delivered")
    receiver = Receiver(500)

    first = deliver(inproc, receiver)
    # Only the first event was due to go: "delivered" waits while "sent" is pending.
    assert first is not None and (first.failed, first.delivered) == (1, 0)
    [sent_row, delivered_row] = events(inproc)
    assert sent_row.attempts == 1 and "500" in (sent_row.last_error or "")
    assert deliver(inproc, receiver) is None  # nothing due during the backoff
    later = utcnow() + dt.timedelta(minutes=5)
    assert deliver(inproc, receiver, at=later).delivered == 1  # type: ignore[union-attr]
    assert deliver(inproc, receiver, at=later).delivered == 1  # type: ignore[union-attr]

    received = receiver.received()
    assert [b["status"] for b in received] == ["sent", "sent", "delivered"]
    assert received[0]["id"] == received[1]["id"] == sent_row.event_id  # one id for every attempt
    for request in receiver.requests:
        assert request.url.host == PUBLIC and request.headers["host"] == "billing.example.com"
        assert webhook_rules.verify(
            SECRET,
            request.headers["webhook-id"],
            request.headers["webhook-timestamp"],
            request.content,
            request.headers["webhook-signature"],
            now=float(request.headers["webhook-timestamp"]),
        )
        assert request.headers["webhook-id"] == json.loads(request.content)["id"]
    assert [e.state for e in events(inproc)] == ["delivered", "delivered"]


def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(inproc: InProcess) -> None:
    message_id = client.send(NUMBER, text="Halo", callback_url="http://billing.example.com/hook")
    inproc.settle(message_id, "sent")
    receiver = Receiver()

    webhook_delivery.deliver_batch(
        inproc.settings, inproc.app, receiver.client(), resolver=lambda host, port: [PUBLIC, "10.0.0.7"]
    )

    assert receiver.requests == []
    [row] = events(inproc, message_id)[:1]
    assert row.state == "pending" and "10.0.0.7" in (row.last_error or "") and "refused" in (row.last_error or "")


def test_a_redirect_is_not_followed_and_counts_as_a_failure(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    inproc.add_session("WA-1")
    inproc.settle(client.send(NUMBER, text="Halo"), "sent")
    receiver = Receiver(302)
    result = deliver(inproc, receiver)
    assert result is not None and result.failed == 1 and len(receiver.requests) == 1
    assert "redirects are not followed" in (events(inproc)[0].last_error or "")


def test_the_celery_hook_publishes_the_event_as_a_task_of_the_billing_codebase(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc(status_hook="celery:billing.on_status@billing")
    inproc.add_session("WA-1")
    message_id = client.send(NUMBER, text="Halo", ref="INV-9")
    inproc.settle(message_id, "delivered")

    deliver(inproc, Receiver())
    deliver(inproc, Receiver())

    published = inproc.broker.published("billing.on_status")
    assert [(t.queue, t.kwargs["event"]["status"]) for t in published] == [
        ("billing", "sent"),
        ("billing", "delivered"),
    ]
    assert published[0].kwargs["event"]["ref"] == "INV-9"
    assert [e.state for e in events(inproc)] == ["delivered", "delivered"]


def test_an_event_failing_past_its_retry_window_is_dead_listed_and_retried(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc(status_webhook_url=URL, webhook_retry_hours=1)
    inproc.add_session("WA-1")
    message_id = client.send(NUMBER, text="Halo")
    inproc.settle(message_id, "delivered")
    down = Receiver(*[503] * 10)

    deliver(inproc, down)
    result = deliver(inproc, down, at=utcnow() + dt.timedelta(hours=2))
    assert result is not None and result.dead == 1
    # The dead "sent" no longer holds back "delivered", which goes on its own schedule.
    [dead] = client.webhook_events(state="dead")
    assert (dead["messageId"], dead["status"], dead["attempts"]) == (message_id, "sent", 2)
    assert "503" in dead["lastError"]
    listed = inproc.cli("webhooks", "list", "--dead")
    assert dead["id"] in listed.output and "503" in listed.output
    with inproc.api() as http:
        page = http.get("/queue").text
        assert f'action="/queue/webhooks/{dead["id"]}/retry"' in page and "Status events given up on" in page

    with inproc.api() as http:
        assert http.post("/api/whatsapp/webhooks/evt_nope/retry").status_code == 404
        retried = http.post(f"/api/whatsapp/webhooks/{dead['id']}/retry")
        assert retried.status_code == 200 and retried.json()["state"] == "pending"
        counts = http.get("/api/whatsapp/webhooks").json()["counts"]
        assert "Status events given up on" not in http.get("/queue").text
    assert counts == {"pending": 2}
    up = Receiver()
    deliver(inproc, up)
    assert [b["status"] for b in up.received()] == ["sent"]
    assert client.webhook_events(state="dead") == []
    assert f"{dead['id']} is delivered" in inproc.cli("webhooks", "retry", dead["id"]).output


def test_the_queue_pages_retry_button_sends_a_dead_event_again(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url=URL, webhook_retry_hours=1)
    inproc.add_session("WA-1")
    inproc.settle(client.send(NUMBER, text="Halo"), "sent")
    deliver(inproc, Receiver(503), at=utcnow() + dt.timedelta(hours=2))
    [dead] = client.webhook_events(state="dead")

    with inproc.api() as http:
        answer = http.post(f"/queue/webhooks/{dead['id']}/retry", headers={"referer": "http://testserver/queue"})
        # Back on the queue page (the redirect followed), with what was done.
        assert answer.status_code == 200 and "will be sent again now" in answer.text

    [event] = [e for e in client.webhook_events() if e["id"] == dead["id"]]
    assert event["state"] == "pending" and event["nextAttemptAt"] is not None


def test_a_failed_target_is_held_for_its_backoff_even_for_events_written_since(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    inproc.add_session("WA-1")
    inproc.settle(client.send(NUMBER, text="Halo"), "sent")
    down = Receiver(*[503] * 10)
    held: dict[str, dt.datetime] = {}

    def batch() -> webhook_delivery.Delivery | None:
        return webhook_delivery.deliver_batch(
            inproc.settings, inproc.app, down.client(), resolver=lambda host, port: [PUBLIC], held=held
        )

    first = batch()
    assert first is not None and first.failed == 1 and URL in held
    later = client.send("081234567891", text="Halo lagi")
    inproc.settle(later, "sent")
    batch()  # the new event is due, but its target is held: not tried, moved to the held time

    assert len(down.requests) == 1
    [row] = [e for e in events(inproc, later) if e.status == "sent"]
    assert row.attempts == 0 and row.next_attempt_at >= held[URL] - dt.timedelta(seconds=1)


def test_a_long_backoff_holds_the_targets_other_events_for_30_s_at_most(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    inproc.add_session("WA-1")
    first = client.send(NUMBER, text="Halo")
    inproc.settle(first, "sent")
    with session_scope(inproc.settings.database) as db:  # an event that has failed 10 times already
        db.execute(update(WebhookEvent).where(WebhookEvent.message_id == first).values(attempts=10))
    held: dict[str, dt.datetime] = {}

    webhook_delivery.deliver_batch(
        inproc.settings, inproc.app, Receiver(503).client(), resolver=lambda host, port: [PUBLIC], held=held
    )

    [probe] = [e for e in events(inproc, first) if e.status == "sent"]
    assert probe.next_attempt_at > utcnow() + dt.timedelta(minutes=29)  # its own backoff: 30 to 60 minutes
    assert held[URL] <= utcnow() + dt.timedelta(seconds=webhook_delivery.HOLD_SECONDS)


def test_a_request_the_public_task_refuses_makes_a_failed_event(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url=URL)
    inproc.app.send_task("wa.send", kwargs={"to": "12345", "text": "Halo", "idempotency_key": "inv-9"})
    inproc.run()

    [event] = bodies(inproc)
    assert (event["status"], event["idempotencyKey"]) == ("failed", "inv-9")
    assert event["error"].startswith("invalid_phone_number:") and "12345" in event["error"]


def test_opted_out_customers_promotions_report_cancelled_and_failed(make_inproc: Callable[..., InProcess]) -> None:
    from wa_tasks.pipeline import optout

    inproc = make_inproc(status_webhook_url=URL)
    client.create_template("promo_dec", "Promo Desember untuk {{ customer_name }}!", category="promotion")
    later = utcnow() + dt.timedelta(hours=1)
    waiting = client.send(NUMBER, template="promo_dec", data={"customer_name": "Budi"}, send_at=later)
    # The customer replies STOP: the waiting promotion is cancelled, with the reason.
    assert optout.record(inproc.settings, NUMBER, keyword="stop") == 1
    # A bulk promotion afterwards stores theirs failed at once.
    job = client.send_bulk(
        [
            {"whatsapp": NUMBER, "data": {"customer_name": "Budi"}},
            {"whatsapp": "081234567891", "data": {"customer_name": "Ani"}},
        ],
        template="promo_dec",
        send_at=later,
    )

    [cancelled] = bodies(inproc, waiting)
    assert cancelled["status"] == "cancelled" and cancelled["error"] == optout.OPTED_OUT_ERROR
    with session_scope(inproc.settings.database) as db:
        refused = db.scalar(select(Message.id).where(Message.bulk_job_id == job, Message.status == "failed"))
    assert [(b["messageId"], b["status"]) for b in bodies(inproc) if b["messageId"] != waiting] == [(refused, "failed")]


def test_https_goes_to_the_checked_address_with_the_name_for_tls_and_host(inproc: InProcess) -> None:
    receiver = Receiver()
    event = webhook_delivery.Claimed(
        1, "evt_1", "https://user:pw@billing.example.com:8443/wa?key=k", "{}", 0, utcnow() + dt.timedelta(hours=1)
    )

    webhook_delivery.post(receiver.client(), inproc.settings, event, resolver=lambda host, port: [PUBLIC])

    [request] = receiver.requests
    assert (request.url.scheme, request.url.host, request.url.port) == ("https", PUBLIC, 8443)
    assert request.url.query == b"key=k"
    # TLS is negotiated and the certificate checked for the name, not the address.
    assert request.extensions["sni_hostname"] == "billing.example.com"
    assert request.headers["host"] == "billing.example.com:8443"
    assert "webhook-signature" not in request.headers  # no WA_WEBHOOK_SECRET: unsigned


def test_each_receiver_name_has_its_own_connections(inproc: InProcess) -> None:
    # Two names on one address must not share a TLS connection checked for the other's certificate.
    clients = webhook_delivery.HostClients(inproc.settings)
    try:
        assert clients.get("a.example.com") is clients.get("a.example.com")
        assert clients.get("a.example.com") is not clients.get("b.example.com")
        assert not clients.get("a.example.com").follow_redirects
    finally:
        clients.close()


def test_the_installations_own_url_may_be_on_the_local_network(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(status_webhook_url="http://billing.lan/wa/status")
    inproc.add_session("WA-1")
    inproc.settle(client.send(NUMBER, text="Halo", callback_url="http://hooks.example.com/cb"), "sent")
    receiver = Receiver()

    webhook_delivery.deliver_batch(
        inproc.settings, inproc.app, receiver.client(), resolver=lambda host, port: ["192.168.88.10"]
    )

    # The operator's URL got its event; the caller's URL, resolving to the same private address, did not.
    assert [r.headers["host"] for r in receiver.requests] == ["billing.lan"]
    refused = [e for e in events(inproc) if e.target == "http://hooks.example.com/cb" and e.status == "sent"]
    assert "192.168.88.10" in (refused[0].last_error or "")
