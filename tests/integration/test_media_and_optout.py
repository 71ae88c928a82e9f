"""Media, button/list fallbacks and opt-out through the real pipeline: a real worker and session
host, images served by a local HTTP server, customers' replies played on the simulated network,
and what each phone received checked in the ledger. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import Celery
from sqlalchemy import delete, select

from models import Message, OptOut
from support.billing_samples import NUMBERS, PNG_1PX, TRIGGERS
from support.stack import Stack
from wa_tasks import errors

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
FILES = {"/promo.png": (PNG_1PX, "image/png"), "/brosur.pdf": (PDF, "application/octet-stream")}


class _Files(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        found = FILES.get(self.path.split("?")[0])
        if found is None:
            self.send_error(404, "Not Found")
            return
        body, mimetype = found
        self.send_response(200)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def files() -> Iterator[str]:
    """Base URL of a local HTTP server with /promo.png and /brosur.pdf (anything else: 404)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_media_and_button_and_list_messages_reach_the_customer(stack: Stack, files: str) -> None:
    # Given media, button and list templates and one connected session
    client = stack.client
    client.create_template("promo_gambar", "Promo {{ bulan }}: internet 2x lebih cepat!", type="media")
    client.create_template("tagihan_tombol", "Tagihan {{ amount|rupiah }} sudah terbit.", type="button")
    client.create_template("paket", "Halo {{ nama }}, pilih paket:", type="list")
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When an image by URL (from a template), a document by URL, an image as bytes, a broken link,
    # a button message and a list message are sent
    image = client.send(
        "0812-5555-0001", template="promo_gambar", data={"bulan": "Juli", "media_url": f"{files}/promo.png"}
    )
    document = client.send_media("0812-5555-0002", f"{files}/brosur.pdf?sig=rahasia", caption="Brosur paket 2025")
    raw = client.send_media("0812-5555-0003", PNG_1PX, caption="Bukti pembayaran INV-7")
    broken = client.send(
        "0812-5555-0004", template="promo_gambar", data={"bulan": "Mei", "media_url": f"{files}/hilang.png"}
    )
    button = client.send(
        "0812-5555-0005",
        template="tagihan_tombol",
        data={"amount": 150000, "buttons": ["Bayar sekarang", "Hubungi admin"]},
    )
    listed = client.send(
        "0812-5555-0006",
        template="paket",
        data={
            "nama": "Rina",
            "sections": [{"title": "Bulanan", "rows": [{"title": "10 Mbps", "description": "Rp150.000"}]}],
            "footer": "Balas 0 untuk batal",
        },
    )

    # Then the images and the document arrive as media with their captions
    for message_id in (image, document, raw, button, listed):
        stack.wait_status(message_id, "sent", "delivered", "read")
    [got_image] = stack.ledger("6281255550001")
    assert (got_image.kind, got_image.mimetype, got_image.size) == ("image", "image/png", len(PNG_1PX))
    assert got_image.text == "Promo Juli: internet 2x lebih cepat!"
    [got_document] = stack.ledger("6281255550002")
    assert (got_document.kind, got_document.mimetype, got_document.size) == ("document", "application/pdf", len(PDF))
    assert got_document.text == "Brosur paket 2025"
    [got_raw] = stack.ledger("6281255550003")
    assert (got_raw.kind, got_raw.mimetype, got_raw.text) == ("image", "image/png", "Bukti pembayaran INV-7")

    # And a link that does not work fails clearly, without sending anything (and without the query)
    failed = stack.wait_status(broken, "failed")
    assert failed["error"].startswith(f"media_download_failed: {files}/hilang.png answered HTTP 404")
    assert stack.ledger("6281255550004") == []

    # And button and list messages arrive as their plain-text fallback
    [got_button] = stack.ledger("6281255550005")
    assert got_button.kind == "text"
    assert got_button.text == (
        "Tagihan Rp150.000 sudah terbit.\n\n1. Bayar sekarang\n2. Hubungi admin\n\nBalas dengan angka pilihan Anda."
    )
    [got_list] = stack.ledger("6281255550006")
    assert got_list.text == (
        "Halo Rina, pilih paket:\n\n*Bulanan*\n1. 10 Mbps - Rp150.000\n\n"
        "Balas dengan angka pilihan Anda.\nBalas 0 untuk batal"
    )
    assert len(stack.ledger()) == 5


def _wait(condition: object, what: str, stack: Stack, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout}s\n{stack.logs()}")


def test_a_customer_who_replies_stop_gets_no_more_promotions_but_still_gets_billing(stack: Stack) -> None:
    # Given a promotion template, the defaults, and a customer who already got one promotion
    client = stack.client
    client.install_default_templates()
    client.create_template("promo", "Promo {{ bulan }}: gratis upgrade 1 bulan!", category="promotion")
    with stack.db() as db:
        db.execute(delete(OptOut))
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    customer, other = NUMBERS["payment.completed"], "6281266660001"
    first = client.send(customer, template="promo", data={"bulan": "Juni"})
    stack.wait_status(first, "sent", "delivered", "read")

    # When another customer writes a sentence containing "stop", and the customer replies "stop"
    # (through the CLI, as an operator plays it on the simulated network)
    stack.simnet.reply("wa-1", other, "jangan stop internet saya ya")
    replied = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "sim", "reply", "wa-1", "+62 812-1111-0002", "stop"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replied.returncode == 0, replied.stderr
    _wait(lambda: client.is_opted_out(customer), "the opt-out", stack)

    # Then a later promotion to them is refused with a clear error, by the client and by wa.send
    with pytest.raises(errors.OptedOut, match="opted out of promotions"):
        client.send(customer, template="promo", data={"bulan": "Juli"})
    billing = Celery("billing", broker=stack.settings.broker_url)
    billing.conf.task_routes = {"wa.*": {"queue": "wa.default"}}
    billing.send_task(
        "wa.send", kwargs={"to": customer, "template": "promo", "data": {"bulan": "Juli"}, "idempotency_key": "p-2"}
    )
    # But billing messages still reach them, and the other customer still gets promotions
    data, confirmation = TRIGGERS["payment.completed"]
    paid = client.notify("payment.completed", data)
    promo_other = client.send(other, template="promo", data={"bulan": "Juli"})

    stack.wait_status(paid, "sent", "delivered", "read")
    stack.wait_status(promo_other, "sent", "delivered", "read")
    deadline = time.monotonic() + 20
    refused = None
    while refused is None and time.monotonic() < deadline:
        with stack.db() as db:
            refused = db.scalar(select(Message).where(Message.idempotency_key == "p-2", Message.status == "failed"))
        time.sleep(0.1)
    assert refused is not None and refused.error_message is not None
    assert refused.error_message.startswith("opted_out: ")
    assert [e.text for e in stack.ledger(customer)] == ["Promo Juni: gratis upgrade 1 bulan!", confirmation]
    assert [e.text for e in stack.ledger(other)] == ["Promo Juli: gratis upgrade 1 bulan!"]
    assert not client.is_opted_out(other)
    with stack.db() as db:
        [opt_out] = db.scalars(select(OptOut)).all()
    assert (opt_out.number, opt_out.keyword, opt_out.session_id) == (customer, "stop", "wa-1")
    assert opt_out.wa_message_id is not None and opt_out.wa_message_id.startswith("SIMIN")


def test_a_promotion_still_waiting_when_the_customer_replies_stop_is_cancelled_not_sent(stack: Stack) -> None:
    # Given a number paced at one send every 6 s, and three messages of one priority in its queue:
    # a promotion to someone else (sent at once), then a promotion and a bill to the customer
    client = stack.client
    client.create_template("promo", "Promo {{ bulan }}: gratis upgrade 1 bulan!", category="promotion")
    stack.add_session("wa-1", priority=1, pace_seconds=6.0)
    stack.start()
    stack.wait_connected("wa-1")
    customer, other = NUMBERS["payment.completed"], "6281266660001"
    first = client.send(other, template="promo", data={"bulan": "Juni"})
    stack.wait_status(first, "sent", "delivered", "read")
    waiting = client.send(customer, template="promo", data={"bulan": "Juni"})
    bill = client.send(customer, text="Tagihan Juni Anda Rp150.000", priority="normal")
    stack.wait_status(waiting, "routed")

    # When the customer replies STOP while that promotion waits for the number's next slot
    stack.simnet.reply("wa-1", customer, "STOP")

    # Then it is cancelled with the reason, the bill still goes, and the customer never gets the promotion
    cancelled = stack.wait_status(waiting, "cancelled", "sent", "delivered", "read", timeout=20)
    assert cancelled["status"] == "cancelled", cancelled
    assert cancelled["error"].startswith("opted_out: "), cancelled
    stack.wait_status(bill, "sent", "delivered", "read", timeout=30)
    assert [e.text for e in stack.ledger(customer)] == ["Tagihan Juni Anda Rp150.000"]
    assert "1 waiting promotion(s) to them cancelled" in stack.log_text("sessions")
