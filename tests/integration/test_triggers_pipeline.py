"""Notification triggers end to end: billing events through the thin client and through the public
``wa.notify`` task, on a real worker and session host, checked against the exact text each
customer's phone received in the simulated network's ledger. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from celery import Celery
from sqlalchemy import select

from models import Message
from support.billing_samples import NUMBERS, TRIGGERS
from support.stack import Stack
from wa_tasks.core import priorities

pytestmark = pytest.mark.integration


def _row(stack: Stack, key: str, statuses: tuple[str, ...], timeout: float = 30.0) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.db() as db:
            row = db.scalar(select(Message).where(Message.idempotency_key == key))
            if row is not None and row.status in statuses:
                return row
        time.sleep(0.1)
    raise AssertionError(f"no message with key {key} reached {statuses}\n{stack.logs()}")


def test_every_trigger_reaches_the_customer_with_the_exact_text(stack: Stack) -> None:
    # Given the default templates and one connected session
    stack.client.install_default_templates()
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When billing code fires each event once, and a bulk.send of expiry warnings to two customers
    ids = {event: stack.client.notify(event, data) for event, (data, _) in TRIGGERS.items()}
    job = stack.client.notify(
        "bulk.send",
        {
            "recipients": [
                {"whatsapp": "0812-2222-0001", "data": {"customer_name": "Agus", "remaining_time": 5 * 3600}},
                {"whatsapp": "0812-2222-0002", "data": {"customer_name": "Dewi", "remaining_time": 86400}},
            ],
            "templateName": "expiry_warning",
            "templateData": {"renewal_url": "https://isp.example/r"},
        },
        idempotency_key="bulk-expiry-1",
    )

    # Then each customer received exactly the text of their event, once, with the event's priority
    statuses = {event: stack.wait_status(i, "sent", "delivered", "read") for event, i in ids.items()}
    for event, (_, text) in TRIGGERS.items():
        assert [e.text for e in stack.ledger(NUMBERS[event])] == [text], event
        assert statuses[event]["to"] == NUMBERS[event]
    with stack.db() as db:
        steps = {event: db.get(Message, i).priority for event, i in ids.items()}  # type: ignore[union-attr]
    assert steps == {
        "invoice.created": priorities.LEVELS["normal"],
        "payment.completed": priorities.LEVELS["urgent"],
        "service.expiring": priorities.LEVELS["normal"],
        "voucher.activated": priorities.LEVELS["urgent"],
        "service.suspended": priorities.LEVELS["high"],
        "service.reactivated": priorities.LEVELS["urgent"],
    }

    # And the bulk job reached both customers, each with their own data, at high priority
    deadline = time.monotonic() + 30
    while stack.client.bulk_status(job)["sent"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.client.bulk_status(job)["sent"] == 2
    for number, name, left in (("6281222220001", "Agus", "5 jam"), ("6281222220002", "Dewi", "1 hari")):
        [entry] = stack.ledger(number)
        assert entry.text.startswith(f"⚠️ Peringatan Expired\n\nHalo {name},\n")
        assert f"⏰ {left}\n" in entry.text and "https://isp.example/r\n" in entry.text
    with stack.db() as db:
        bulk_steps = set(db.scalars(select(Message.priority).where(Message.bulk_job_id == job)))
    assert bulk_steps == {priorities.LEVELS["high"]}
    assert len(stack.ledger()) == len(TRIGGERS) + 2


def test_the_public_notify_task_sends_and_records_refused_triggers(stack: Stack) -> None:
    # A Celery app of another codebase: only the broker URL and the documented task name
    stack.client.install_default_templates()
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    billing = Celery("billing", broker=stack.settings.broker_url)
    billing.conf.task_routes = {"wa.*": {"queue": "wa.default"}}
    voucher, text = TRIGGERS["voucher.activated"]

    def notify(key: str, event: str, data: dict[str, object], **extra: object) -> None:
        billing.send_task("wa.notify", kwargs={"event": event, "data": data, "idempotency_key": key, **extra})

    notify("n-ok", "voucher.activated", voucher)
    notify("n-ok", "voucher.activated", voucher)  # a repeated key sends nothing new
    notify("n-own", "isolir.warning", {"to": "0812-3333-0001", "nama": "Rina"}, template="payment_reminder")
    notify("n-unknown", "invoice.paid", {"customer_whatsapp": "0812-3333-0002"})
    notify("n-nobody", "payment.completed", {"invoice_number": "INV-9"})
    notify("n-data", "payment.completed", {"customer_whatsapp": "0812-3333-0003", "invoice_number": "INV-9"})

    sent = _row(stack, "n-ok", ("read",))
    own = _row(stack, "n-own", ("failed",))
    unknown = _row(stack, "n-unknown", ("failed",))
    nobody = _row(stack, "n-nobody", ("failed",))
    data = _row(stack, "n-data", ("failed",))

    assert sent.priority == priorities.LEVELS["urgent"] and sent.content == text
    assert [e.text for e in stack.ledger(NUMBERS["voucher.activated"])] == [text]
    assert own.error_message is not None and own.error_message.startswith("template_error: template 'payment_reminder'")
    assert unknown.error_message is not None and unknown.error_message.startswith(
        "unknown_event: no trigger for event 'invoice.paid'"
    )
    assert unknown.to_number == "0812-3333-0002"
    assert nobody.error_message is not None and nobody.error_message.startswith("missing_recipient: ")
    assert nobody.to_number == "(payment.completed)" and nobody.priority == priorities.LEVELS["urgent"]
    assert data.error_message is not None and "needs data for: amount, payment_date, payment_method, reference" in (
        data.error_message
    )
    with stack.db() as db:
        assert len(db.scalars(select(Message.id)).all()) == 5
    assert len(stack.ledger()) == 1
