"""Bulk sends through the real stack: progress counts match the rows, cancel stops what was not
sent, invalid recipients queue nothing, and a repeated idempotency key makes no second job."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from models import Message, Template
from models.db import session_scope
from support.stack import Stack
from wa_tasks import errors
from wa_tasks.client import Client
from wa_tasks.pipeline import optout
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


def _recipients(n: int) -> list[dict[str, object]]:
    return [{"whatsapp": f"08123400{i:04d}", "data": {"customer_name": f"Pelanggan {i}"}} for i in range(n)]


def test_bulk_progress_counts_match_the_rows_and_every_recipient_gets_one(stack: Stack) -> None:
    # Given a template and one connected session
    with stack.db() as db:
        db.add(
            Template(name="info", content="Halo {{ customer_name }}, {{ note }}", variables=["customer_name", "note"])
        )
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When a bulk job of 40 recipients is queued with shared and per-recipient data
    job = stack.client.send_bulk(_recipients(40), template="info", template_data={"note": "jaringan normal"})

    # Then its progress reaches 40 sent, and the counts always equal the rows
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = stack.client.bulk_status(job)
        with stack.db() as db:
            rows = db.scalar(select(func.count()).select_from(Message).where(Message.bulk_job_id == job))
        assert progress["total"] == rows == 40
        assert sum(progress["byStatus"].values()) == 40
        if progress["sent"] == 40:
            break
        time.sleep(0.2)
    assert progress["status"] == "completed", progress
    ledger = stack.ledger()
    assert sorted(e.text for e in ledger) == sorted(f"Halo Pelanggan {i}, jaringan normal" for i in range(40))
    assert len({e.to for e in ledger}) == 40


def test_cancel_stops_what_was_not_yet_sent(stack: Stack) -> None:
    # Given a slow session and a bulk job
    stack.add_session("wa-1", priority=1, pace_seconds=0.5)
    stack.start()
    stack.wait_connected("wa-1")
    job = stack.client.send_bulk(_recipients(20), text="Pemeliharaan jaringan malam ini")
    deadline = time.monotonic() + 30
    while stack.client.bulk_status(job)["sent"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    # When it is cancelled
    cancelled = stack.client.cancel_bulk(job)

    # Then the rest is never sent
    assert cancelled >= 10
    time.sleep(2.0)
    progress = stack.client.bulk_status(job)
    assert progress["status"] == "cancelled"
    assert progress["cancelled"] == cancelled
    assert progress["sent"] + progress["cancelled"] + progress["queued"] == 20
    time.sleep(1.0)
    assert len(stack.ledger()) == stack.client.bulk_status(job)["sent"] <= 20 - cancelled


def test_invalid_recipients_queue_nothing_and_keys_make_no_second_job(stack: Stack) -> None:
    recipients = _recipients(5) + [{"whatsapp": "0812"}, {"to": "bukan nomor"}]
    with pytest.raises(errors.InvalidMessage) as raised:
        stack.client.send_bulk(recipients, text="Halo")
    assert "2 of 7 recipients are invalid" in str(raised.value) and "#5" in str(raised.value)
    with stack.db() as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 0

    first = stack.client.send_bulk(_recipients(5), text="Halo", idempotency_key="promo-nov")
    again = stack.client.send_bulk(_recipients(5), text="Halo", idempotency_key="promo-nov")
    assert first == again
    with stack.db() as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 5


def test_a_bulk_promotion_skips_customers_who_opted_out(stack: Stack) -> None:
    # Given a promotion template and a customer who replied STOP
    with stack.db() as db:
        db.add(
            Template(
                name="promo", category="promotion", content="Promo {{ customer_name }}!", variables=["customer_name"]
            )
        )
    optout.record(stack.settings, "6281234000001", keyword="STOP")
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When a bulk promotion goes to three customers including that one
    job = stack.client.send_bulk(_recipients(3), template="promo")

    # Then the other two receive it; the opted-out customer's row is failed with the reason
    deadline = time.monotonic() + 30
    while stack.client.bulk_status(job)["sent"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    progress = stack.client.bulk_status(job)
    assert (progress["sent"], progress["failed"], progress["status"]) == (2, 1, "completed")
    assert sorted(e.to for e in stack.ledger()) == ["6281234000000", "6281234000002"]
    with stack.db() as db:
        refused = db.scalar(select(Message).where(Message.to_number == "6281234000001"))
        assert refused is not None and refused.error_message.startswith("opted_out")


def test_bulk_rows_keep_every_character_and_their_data_exactly(settings: Settings) -> None:
    # Given texts and template data with what a COPY must escape (quotes, commas, new lines,
    # backslashes, tabs, non-ASCII) and nested data, sent as one bulk through a template
    client = Client(settings)
    client.create_template("tricky", 'Halo {{ nama }}, tagihan "{{ paket }}" Rp{{ harga }}.\n\\ selesai\tya')
    names = ['Budi, "Bos"', "Siti\\n", "Ñoño — 李", ""]
    recipients = [
        {"whatsapp": f"08123456780{i}", "data": {"nama": n or "-", "paket": 'A,"B"', "harga": i, "x": {"y": [n]}}}
        for i, n in enumerate(names)
    ]
    job = client.send_bulk(recipients, template="tricky")
    # Then every row reads back as rendered and with the data as given, byte for byte
    with session_scope(settings.database) as db:
        rows = db.execute(select(Message).where(Message.bulk_job_id == job).order_by(Message.to_number)).scalars()
        stored = [(m.content, m.data, m.status, m.attempts, m.message_type) for m in rows]
    for (content, data, status, attempts, message_type), recipient in zip(stored, recipients, strict=True):
        assert data == recipient["data"]
        nama = recipient["data"]["nama"]
        assert content == f'Halo {nama}, tagihan "A,"B"" Rp{recipient["data"]["harga"]}.\n\\ selesai\tya'
        assert (status, attempts, message_type) == ("queued", 0, "text")
