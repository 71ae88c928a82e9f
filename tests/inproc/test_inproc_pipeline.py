"""The pipeline in one process (``tests/support/inproc.py``): a message from the thin client, the
HTTP API or the command line through ``wa.dispatch`` and a session's delivery to the simulated
network, and what each way a send can end does to it. The same cases with real processes are the
system tier's (``tests/integration/test_pipeline.py`` and others); these run in the fast tier."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from models import Message, WhatsAppSession
from models.db import session_scope
from sessions_host.transports.base import AmbiguousSendError, SessionError, TransientSendError
from support.inproc import HostCrash, InProcess
from support.workers import free_port
from wa_tasks import client
from wa_tasks.core import task_names
from wa_tasks.errors import InvalidRequest
from wa_tasks.pipeline import lifecycle

NUMBER = "6281234567890"


def row(inproc: InProcess, message_id: str) -> Message:
    with session_scope(inproc.settings.database) as db:
        message = db.get(Message, message_id)
        assert message is not None
        db.expunge(message)
        return message


def dispatches(inproc: InProcess) -> list[dict[str, Any]]:
    return [task.kwargs for task in inproc.broker.published(task_names.DISPATCH)]


# Sending ---------------------------------------------------------------------------------------------


def test_a_text_reaches_the_phone_and_its_receipt_makes_it_delivered(inproc: InProcess) -> None:
    message_id = client.send("0812-3456-7890", text="Tagihan Anda Rp150.000 jatuh tempo 30 November.")
    assert client.status(message_id)["status"] == "queued"

    view = inproc.settle(message_id, "delivered")

    assert view["sessionId"] == "wa-1" and view["attempts"] == 1 and view["error"] is None
    assert view["sentAt"] and view["deliveredAt"] and view["readAt"] is None
    [entry] = inproc.ledger(NUMBER)
    assert entry.text == "Tagihan Anda Rp150.000 jatuh tempo 30 November."
    assert (entry.session, entry.wa_message_id) == ("wa-1", view["waMessageId"])
    # The route it took: one dispatch on the default queue, one deliver on the session's queue.
    assert [(t.name, t.queue) for t in inproc.broker.history] == [
        (task_names.DISPATCH, "wa.default"),
        (task_names.DELIVER, "wa.session.wa-1"),
    ]
    # The host showed the send to Flower as a wa.deliver that succeeded.
    events = [kind for kind, _ in inproc.host.monitor.sent]  # type: ignore[attr-defined]
    assert events == ["task-received", "task-started", "task-succeeded"]


def test_the_read_receipt_follows_the_delivery_receipt(make_inproc: Callable[..., InProcess]) -> None:
    inproc = make_inproc(sim_read_after_seconds=0.0)
    inproc.add_session("WA-1")
    message_id = client.send(NUMBER, text="Pembayaran diterima.")

    view = inproc.settle(message_id, "read")

    assert view["deliveredAt"] and view["readAt"]


def test_a_template_send_renders_in_indonesian(inproc: InProcess) -> None:
    client.install_default_templates()
    data = {
        "customer_name": "Budi",
        "invoice_number": "INV-001",
        "amount": 150000,
        "due_date": "2025-01-09",
        "payment_url": "https://bayar.example/INV-001",
    }
    message_id = client.send(NUMBER, template="payment_reminder", data=data, priority="high")

    inproc.settle(message_id, "delivered")

    [entry] = inproc.ledger(NUMBER)
    assert entry.text.startswith("Halo Budi,")
    assert "Rp150.000" in entry.text and "9 Januari 2025" in entry.text and "INV-001" in entry.text
    [dispatch] = inproc.broker.published(task_names.DISPATCH)
    assert dispatch.priority == 2  # "high"


def test_bad_input_raises_and_queues_nothing(inproc: InProcess) -> None:
    with pytest.raises(InvalidRequest, match="12345"):
        client.send("12345", text="Halo")
    with pytest.raises(InvalidRequest, match="no_such_template"):
        client.send(NUMBER, template="no_such_template", data={})
    inproc.run()
    assert inproc.broker.history == [] and inproc.ledger() == []


def test_a_repeated_idempotency_key_sends_once(inproc: InProcess) -> None:
    first = client.send(NUMBER, text="Voucher Anda: 1234", idempotency_key="voucher-1234")
    second = client.send(NUMBER, text="Voucher Anda: 1234", idempotency_key="voucher-1234")

    assert second == first
    inproc.settle(first, "delivered")
    assert len(inproc.ledger(NUMBER)) == 1 and len(dispatches(inproc)) == 1


# What a failed send becomes --------------------------------------------------------------------------


def test_a_transient_error_is_retried_after_a_backoff_then_sent(inproc: InProcess) -> None:
    inproc.runner("wa-1").transport.fail_next(TransientSendError("server returned error 500"))
    message_id = client.send(NUMBER, text="Tagihan Anda sudah terbit.")

    view = inproc.settle(message_id, "delivered")

    assert view["attempts"] == 2 and view["error"] is None
    assert len(inproc.runner("wa-1").transport.sends) == 2
    assert len(inproc.ledger(NUMBER)) == 1
    first, retry = inproc.broker.published(task_names.DISPATCH)
    assert first.countdown == 0 and 1.5 <= retry.countdown <= 2.5  # 2 s ±25 % before attempt 2
    # The session recorded the error, and its errors in a row started over with the send.
    with session_scope(inproc.settings.database) as db:
        session = db.scalar(select(WhatsAppSession).where(WhatsAppSession.session_id == "wa-1"))
        assert session is not None and "error 500" in (session.last_error or "") and session.error_count == 0


def test_transient_errors_on_every_attempt_fail_the_message(inproc: InProcess) -> None:
    transport = inproc.runner("wa-1").transport
    for _ in range(inproc.settings.max_attempts):
        transport.fail_next(TransientSendError("info query returned status 503: service-unavailable"))
    message_id = client.send(NUMBER, text="Tagihan Anda sudah terbit.")

    view = inproc.settle(message_id, "failed")

    assert view["attempts"] == 3 and "service-unavailable" in view["error"] and "after 3 attempts" in view["error"]
    assert inproc.ledger() == [] and len(transport.sends) == 3


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = BytesParser(policy=default_policy).parsebytes(envelope.content)
        self.messages.append((list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback, in this process (aiosmtpd's thread)."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_a_recipient_not_on_whatsapp_fails_at_once_and_goes_by_email(
    make_inproc: Callable[..., InProcess], smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    inproc = make_inproc(email_fallback=True, smtp_host="127.0.0.1", smtp_port=port, smtp_from="tagihan@isp.example")
    inproc.add_session("WA-1")
    inproc.simnet.set_not_on_whatsapp(NUMBER)
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.", email="budi@example.com")

    view = inproc.settle(message_id, "failed")

    assert view["error"].startswith("recipient:") and "not on WhatsApp" in view["error"]
    assert view["attempts"] == 1 and len(dispatches(inproc)) == 1  # not retried
    assert inproc.ledger() == []
    # The email fallback: queued when it failed, then sent by its task to the SMTP server.
    assert [t.kwargs for t in inproc.broker.published(task_names.EMAIL_FALLBACK)] == [{"message_id": message_id}]
    assert row(inproc, message_id).fallback_status == "sent"
    [(recipients, mail)] = inbox.messages
    assert recipients == ["budi@example.com"] and mail["From"] == "tagihan@isp.example"
    body = mail.get_body(("plain",))
    assert body is not None and "Rp150.000" in body.get_content()


def test_the_transport_reporting_an_ambiguous_send_fails_it_without_resending_until_its_receipt(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc()
    # The receipt comes a moment later (0.25-0.75 s), so the ambiguous state can be seen first.
    inproc.add_session("WA-1", options={"delivered_after_seconds": 0.5})
    transport = inproc.runner("wa-1").transport
    transport.fail_next(AmbiguousSendError("timed out waiting for message send response"), after_send=True)
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.")

    failed = inproc.settle(message_id, "failed")

    assert failed["error"].startswith(lifecycle.AMBIGUOUS_PREFIX) and "timed out" in failed["error"]
    assert failed["ambiguousSend"] == lifecycle.AWAITING_RECEIPT
    assert len(dispatches(inproc)) == 1 and len(transport.sends) == 1  # never resent
    assert inproc.broker.published(task_names.EMAIL_FALLBACK) == []  # nor sent by email
    # The network had it: its delivery receipt proves it arrived.
    delivered = inproc.settle(message_id, "delivered")
    assert delivered["ambiguousSend"] == lifecycle.RESOLVED_BY_RECEIPT and delivered["error"] is None
    assert len(inproc.ledger(NUMBER)) == 1


def test_a_host_dying_during_the_send_leaves_it_ambiguous_for_the_next_host(
    make_inproc: Callable[..., InProcess],
) -> None:
    inproc = make_inproc()
    inproc.add_session("WA-1", options={"delivered_after_seconds": 0.5})
    transport = inproc.runner("wa-1").transport
    transport.fail_next(HostCrash(), after_send=True)
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.")

    # The deliver the dead host held comes back (orphan restore) and finds the message "sending".
    failed = inproc.settle(message_id, "failed")

    assert failed["error"] == lifecycle.AMBIGUOUS_SEND and failed["attempts"] == 1
    assert len(transport.sends) == 1 and len(inproc.broker.published(task_names.DELIVER)) == 1
    inproc.settle(message_id, "delivered")
    assert len(inproc.ledger(NUMBER)) == 1


def test_a_host_dying_before_the_send_went_out_stays_ambiguous(inproc: InProcess) -> None:
    transport = inproc.runner("wa-1").transport
    transport.fail_next(HostCrash())
    message_id = client.send(NUMBER, text="Tagihan Anda Rp150.000.")

    view = inproc.settle(message_id, "failed")

    # Nothing reached the phone, but the next host cannot know that: not resent, left to a receipt
    # that will not come (an operator decides after the receipt window).
    assert view["error"] == lifecycle.AMBIGUOUS_SEND and view["ambiguousSend"] == lifecycle.AWAITING_RECEIPT
    assert inproc.ledger() == [] and len(transport.sends) == 1


# Sessions going down ---------------------------------------------------------------------------------


def test_a_message_routed_to_a_session_that_went_down_moves_to_the_next(inproc: InProcess) -> None:
    inproc.add_session("WA-2", priority=2)
    message_id = client.send(NUMBER, text="Tagihan Anda sudah terbit.")
    inproc.run(steps=1)  # the dispatch: routed to wa-1, the first by priority
    assert row(inproc, message_id).status == "routed" and row(inproc, message_id).session_id == "wa-1"

    inproc.simnet.drop("wa-1")
    # Its deliver waits meanwhile: taken before the drop is seen, it would be the send that fails.
    inproc.wait_for(lambda: not inproc.runner("wa-1").transport.connected, "wa-1 disconnected", run=False)
    view = inproc.settle(message_id, "delivered")

    assert view["sessionId"] == "wa-2" and view["attempts"] == 1
    assert inproc.runner("wa-1").transport.sends == []  # wa-1 never tried
    [entry] = inproc.ledger(NUMBER)
    assert entry.session == "wa-2"
    assert dispatches(inproc) == [{"message_id": message_id}, {"message_id": message_id, "exclude": ["wa-1"]}]


def test_a_send_the_session_could_not_make_moves_without_costing_an_attempt(inproc: InProcess) -> None:
    inproc.add_session("WA-2", priority=2)
    inproc.runner("wa-1").transport.fail_next(SessionError("websocket not connected (session is disconnected)"))
    message_id = client.send(NUMBER, text="Tagihan Anda sudah terbit.")

    view = inproc.settle(message_id, "delivered")

    assert view["sessionId"] == "wa-2" and view["attempts"] == 1  # the session's fault, not the message's
    assert dispatches(inproc)[-1] == {"message_id": message_id, "exclude": ["wa-1"]}
    with session_scope(inproc.settings.database) as db:
        errors = {
            sid: error for sid, error in db.execute(select(WhatsAppSession.session_id, WhatsAppSession.last_error))
        }
    assert "websocket not connected" in (errors["wa-1"] or "") and errors["wa-2"] is None


def test_with_every_session_down_a_message_waits_queued_and_goes_when_one_is_back(inproc: InProcess) -> None:
    inproc.simnet.drop("wa-1")
    inproc.wait_for(lambda: inproc.live_status("wa-1") == "disconnected", "wa-1 down for routing", run=False)
    message_id = client.send(NUMBER, text="Tagihan Anda sudah terbit.")

    inproc.run()  # the dispatch finds no usable session and retries later
    inproc.run()  # and again

    assert row(inproc, message_id).status == "queued" and inproc.ledger() == []
    first, *retries = inproc.broker.history
    assert [t.name for t in inproc.broker.history] == [task_names.DISPATCH] * 3
    assert [t.retries for t in retries] == [1, 2] and all(t.countdown > 0 for t in retries)
    inproc.simnet.restore("wa-1")
    inproc.settle(message_id, "delivered")


# The entry points ----------------------------------------------------------------------------------


def test_the_http_api_queues_a_message_and_reports_its_status(inproc: InProcess) -> None:
    with inproc.api() as http:
        sent = http.post("/api/whatsapp/send", json={"to": "0812-3456-7890", "text": "Tagihan Anda Rp150.000."})
        assert sent.status_code == 202, sent.text
        message_id = sent.json()["id"]
        assert sent.json()["status"] == "queued"

        inproc.settle(message_id, "delivered")

        answer = http.get(f"/api/whatsapp/message/{message_id}/status")
        assert answer.status_code == 200
        assert answer.json()["status"] == "delivered" and answer.json()["sessionId"] == "wa-1"
        assert http.get("/api/whatsapp/message/msg_nope/status").status_code == 404
    assert [entry.text for entry in inproc.ledger(NUMBER)] == ["Tagihan Anda Rp150.000."]


def test_the_http_api_refuses_bad_input_and_queues_nothing(inproc: InProcess) -> None:
    with inproc.api() as http:
        refused = http.post("/api/whatsapp/send", json={"to": "12345", "text": "Halo"})
    assert refused.status_code == 422 and "12345" in refused.json()["detail"]
    assert inproc.broker.history == []


def test_the_command_line_sends_and_shows_the_status(inproc: InProcess) -> None:
    sent = inproc.cli("send", "0812-3456-7890", "--text", "Voucher Anda: 1234", "--priority", "urgent")
    assert sent.exit_code == 0, sent.output
    # stdout alone: the host's threads log to stderr meanwhile, which CliRunner's output mixes in
    message_id = sent.stdout.strip()

    inproc.settle(message_id, "delivered")

    shown = inproc.cli("status", message_id)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["status"] == "delivered"
    [dispatch] = inproc.broker.published(task_names.DISPATCH)
    assert dispatch.queue == "wa.urgent"  # urgent ones never wait behind a bulk send's dispatches
    assert [entry.text for entry in inproc.ledger(NUMBER)] == ["Voucher Anda: 1234"]


def test_the_command_line_refuses_bad_input_in_one_line(inproc: InProcess) -> None:
    refused = inproc.cli("send", "12345", "--text", "Halo")
    assert refused.exit_code != 0 and "12345" in refused.output and "Traceback" not in refused.output
    assert inproc.broker.history == []


def test_a_bulk_send_is_routed_in_batches_and_reaches_every_recipient(inproc: InProcess) -> None:
    recipients = [{"whatsapp": f"0812-3456-78{i:02d}", "data": {"name": f"Pelanggan {i}"}} for i in range(5)]
    job_id = client.send_bulk(recipients, text="Promo akhir tahun untuk Anda.")

    inproc.wait_for(lambda: client.bulk_status(job_id)["delivered"] == 5, "every bulk message delivered")

    assert sorted(entry.to for entry in inproc.ledger()) == [f"62812345678{i:02d}" for i in range(5)]
    assert inproc.broker.published(task_names.DISPATCH_BATCH) and not inproc.broker.published(task_names.DISPATCH)
