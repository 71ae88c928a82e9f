"""Email fallback through the real stack: a message that fails on WhatsApp reaches a
real local SMTP server (aiosmtpd) rendered from its template, once; disabled, no address and an
SMTP server that is down are recorded on the message."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from models import Message, WhatsAppContact, utcnow
from support.stack import Stack
from support.workers import free_port
from wa_tasks.pipeline import fallback
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

ABSENT = "6281299990000"  #: a number the simulated network does not know


class Inbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Inbox, int]) -> Settings:
    """The shared test settings with the email fallback on, pointed at the local SMTP server."""
    return settings.model_copy(
        update={
            "email_fallback": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp[1],
            "smtp_from": "tagihan@isp.example",
            "smtp_timeout_seconds": 5.0,
        }
    )


def _row(stack: Stack, message_id: str) -> Message:
    with stack.db() as db:
        row = db.get(Message, message_id)
        assert row is not None
        db.expunge(row)
        return row


def _wait_fallback(stack: Stack, message_id: str, *statuses: str, timeout: float = 30.0) -> Message:
    deadline = time.monotonic() + timeout
    row = _row(stack, message_id)
    while time.monotonic() < deadline:
        row = _row(stack, message_id)
        if row.fallback_status in statuses:
            return row
        time.sleep(0.1)
    raise AssertionError(f"fallback of {message_id} is {row.fallback_status}, not {statuses}\n{stack.logs()}")


def _start(stack: Stack) -> None:
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")


def test_a_message_to_a_number_not_on_whatsapp_is_emailed_from_its_template(
    stack: Stack, smtp: tuple[Inbox, int]
) -> None:
    # Given a customer who is not on WhatsApp but has an email address
    inbox, _ = smtp
    stack.simnet.set_not_on_whatsapp(ABSENT)
    stack.client.create_template("tagihan_baru", "Halo {{ name }},\ntagihan Anda {{ amount|rupiah }} <segera> & lunas.")
    _start(stack)

    # When billing sends it a template message with the address in the trigger-style data
    message_id = stack.client.send(
        "0812-9999-0000",
        template="tagihan_baru",
        data={"name": "Budi", "amount": 150000, "customer_email": "budi@example.com"},
    )

    # Then WhatsApp refuses it, and the email goes out once with the rendered text
    status = stack.wait_status(message_id, "failed")
    assert "not on WhatsApp" in status["error"] and stack.ledger(ABSENT) == []
    row = _wait_fallback(stack, message_id, "sent", "failed")
    assert (row.fallback_status, row.fallback_error, row.email) == ("sent", None, "budi@example.com")
    assert row.fallback_at is not None
    assert len(inbox.messages) == 1
    recipients, mail = inbox.messages[0]
    assert recipients == ["budi@example.com"]
    assert mail["Subject"] == "[WhatsApp Backup] Tagihan baru"
    assert mail["From"] == "tagihan@isp.example"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert "Halo Budi,\ntagihan Anda Rp150.000 <segera> & lunas." in text.get_content().replace("\r\n", "\n")
    assert "tagihan Anda Rp150.000 &lt;segera&gt; &amp; lunas." in html.get_content()

    # And a redelivered task (or a second failure report) sends nothing more
    assert fallback.deliver(stack.settings, message_id) == "sent"
    assert fallback.maybe_queue(stack.app, stack.settings, message_id) is None
    time.sleep(1.0)
    assert len(inbox.messages) == 1


def test_disabled_fallback_and_a_missing_address_are_recorded_as_skipped(stack: Stack, smtp: tuple[Inbox, int]) -> None:
    inbox, _ = smtp
    stack.simnet.set_not_on_whatsapp(ABSENT)
    stack.env["WA_EMAIL_FALLBACK"] = "false"  # the processes run with the fallback off
    _start(stack)

    with_address = stack.client.send(ABSENT, text="Tagihan Anda terbit.", email="budi@example.com")
    assert _wait_fallback(stack, with_address, "skipped").fallback_error == "disabled"

    stack.stop()
    stack.env["WA_EMAIL_FALLBACK"] = "true"
    stack.start()
    stack.wait_connected("wa-1")
    without_address = stack.client.send(ABSENT, text="Tagihan Anda terbit.")
    assert _wait_fallback(stack, without_address, "skipped").fallback_error == "no_address"
    time.sleep(0.5)
    assert inbox.messages == []


def test_an_smtp_server_that_is_down_is_recorded_as_a_failed_fallback(stack: Stack) -> None:
    stack.env["WA_SMTP_PORT"] = str(free_port())  # nothing listens there
    stack.simnet.set_not_on_whatsapp(ABSENT)
    _start(stack)

    message_id = stack.client.send(ABSENT, text="Tagihan Anda terbit.", email="budi@example.com")

    row = _wait_fallback(stack, message_id, "failed", "sent")
    assert row.fallback_status == "failed"
    assert row.fallback_error and "ConnectionRefusedError" in row.fallback_error
    assert row.status == "failed"  # the WhatsApp outcome is untouched


def test_a_number_known_not_on_whatsapp_fails_fast_and_goes_by_email(stack: Stack, smtp: tuple[Inbox, int]) -> None:
    # Given contact sync found the number not on WhatsApp, recently
    inbox, _ = smtp
    with stack.db() as db:
        db.add(WhatsAppContact(number=ABSENT, on_whatsapp=False, checked_at=utcnow(), session_id="wa-1"))
    stack.start("worker")  # no session host: nothing could be sent on WhatsApp anyway

    # When billing sends to it
    message_id = stack.client.send("0812-9999-0000", text="Voucher Anda aktif.", email="budi@example.com")

    # Then the id comes back as usual, the message is failed at once, and the email goes out
    status = stack.client.status(message_id)
    assert status["status"] == "failed" and status["error"].startswith("not_on_whatsapp:")
    assert status["attempts"] == 0
    assert _wait_fallback(stack, message_id, "sent", "failed").fallback_status == "sent"
    assert [m["Subject"] for _, m in inbox.messages] == ["[WhatsApp Backup] Voucher Anda aktif."]

    # But a stale answer does not block a send: it is dispatched as usual
    with stack.db() as db:
        db.execute(update(WhatsAppContact).values(checked_at=utcnow().replace(year=2020)))
    queued = stack.client.send("0812-9999-0000", text="Voucher Anda aktif.")
    assert stack.client.status(queued)["status"] == "queued"


def test_a_fallback_queued_while_the_broker_was_down_is_sent_once_by_the_sweeper(
    stack: Stack, smtp: tuple[Inbox, int]
) -> None:
    # Given a message to a number known not on WhatsApp, whose email fallback task the broker lost
    # (a Redis restarted without persistence; a publish while it was down fails the same way)
    inbox, _ = smtp
    with stack.db() as db:
        db.add(WhatsAppContact(number=ABSENT, on_whatsapp=False, checked_at=utcnow(), session_id="wa-1"))
    message_id = stack.client.send("0812-9999-0000", text="Voucher Anda aktif.", email="budi@example.com")
    assert _row(stack, message_id).fallback_status == "queued"
    stack.redis.flushdb()

    # When the worker runs with the sweeper beating, once the fallback has waited long enough
    stack.env["WA_SWEEP_AFTER_SECONDS"] = "1"
    stack.start("worker")
    with stack.beat("wa.sweep", every=0.5):
        row = _wait_fallback(stack, message_id, "sent", "failed")
        time.sleep(2.0)  # more sweeps: none sends it again

    # Then the email went out, once
    assert row.fallback_status == "sent"
    assert [m["Subject"] for _, m in inbox.messages] == ["[WhatsApp Backup] Voucher Anda aktif."]
    assert "sweeper queued 1 stale email fallback(s) again" in stack.log_text("worker")
