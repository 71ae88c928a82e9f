"""Contact sync through the real stack on the simulated network: numbers checked in
batches through the owning session host, cached with their age, refreshed when too old."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from models import WhatsAppContact, utcnow
from support.stack import Stack
from wa_tasks.errors import CommandFailed
from wa_tasks.pipeline import contacts

pytestmark = pytest.mark.integration

CUSTOMERS = [f"62812{n:08d}" for n in range(10000001, 10000121)]  #: 120 customers
ABSENT = {CUSTOMERS[3], CUSTOMERS[77]}


def _rows(stack: Stack) -> dict[str, WhatsAppContact]:
    with stack.db() as db:
        rows = list(db.scalars(select(WhatsAppContact)))
        for row in rows:
            db.expunge(row)
    return {r.number: r for r in rows}


def _checks(stack: Stack) -> int:
    """How many check_numbers commands the session host answered."""
    log = (stack.logdir / "sessions.log").read_text(errors="replace")
    return log.count("command check_numbers on session wa-1: ok")


def test_sync_checks_numbers_in_batches_and_caches_the_answers(stack: Stack) -> None:
    # Given 120 customers, two of them not on WhatsApp, and a connected session
    for number in ABSENT:
        stack.simnet.set_not_on_whatsapp(number)
    stack.add_session("wa-1", priority=1)
    stack.start("sessions")
    stack.wait_connected("wa-1")

    # When billing syncs its customer list (in its own formatting)
    started = utcnow()
    answer = stack.client.sync_contacts(["0" + n[2:] for n in CUSTOMERS])

    # Then every number has its answer, asked in batches of 50 (3 queries), and each is cached
    assert answer == {n: n not in ABSENT for n in CUSTOMERS}
    assert _checks(stack) == 3
    rows = _rows(stack)
    assert {n: r.on_whatsapp for n, r in rows.items()} == answer
    assert all(r.session_id == "wa-1" and r.checked_at >= started - dt.timedelta(seconds=1) for r in rows.values())

    # And a second sync is answered from the cache, even with no session host left
    stack.stop_process("sessions")
    stack.wait_down("wa-1")
    assert stack.client.sync_contacts(CUSTOMERS[:60]) == {n: n not in ABSENT for n in CUSTOMERS[:60]}
    # But a number never checked needs a session
    with pytest.raises(CommandFailed, match="no connected session"):
        stack.client.sync_contacts(["0812-2000-0001"])


def test_answers_older_than_the_max_age_are_refreshed_by_the_beat_task(stack: Stack) -> None:
    # Given cached answers, some older than WA_CONTACT_MAX_AGE_DAYS (7), and a customer who since
    # left WhatsApp
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    stack.client.sync_contacts(CUSTOMERS[:10])
    old = utcnow() - dt.timedelta(days=8)
    with stack.db() as db:
        db.execute(update(WhatsAppContact).where(WhatsAppContact.number.in_(CUSTOMERS[:4])).values(checked_at=old))
    fresh_before = {n: r.checked_at for n, r in _rows(stack).items() if n in CUSTOMERS[4:10]}
    stack.simnet.set_not_on_whatsapp(CUSTOMERS[0])
    stack.simnet.set_not_on_whatsapp(CUSTOMERS[5])
    # (a stale answer is not trusted by a sync either)
    assert contacts.cached(stack.settings, CUSTOMERS[:10]).keys() == set(CUSTOMERS[4:10])

    # When beat's daily wa.contacts_refresh runs
    stack.app.send_task("wa.contacts_refresh")

    # Then exactly the stale answers are asked again and updated; fresh ones are left alone
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _rows(stack)[CUSTOMERS[0]].checked_at == old:
        time.sleep(0.1)
    rows = _rows(stack)
    assert all(rows[n].checked_at > old for n in CUSTOMERS[:4])
    assert rows[CUSTOMERS[0]].on_whatsapp is False
    assert {n: rows[n].checked_at for n in CUSTOMERS[4:10]} == fresh_before
    assert rows[CUSTOMERS[5]].on_whatsapp is True  # fresh: not asked again until it is old


def test_a_send_to_a_number_sync_found_absent_fails_fast_without_reaching_whatsapp(stack: Stack) -> None:
    stack.simnet.set_not_on_whatsapp(CUSTOMERS[0])
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    assert stack.client.sync_contacts([CUSTOMERS[0], CUSTOMERS[1]]) == {CUSTOMERS[0]: False, CUSTOMERS[1]: True}

    absent = stack.client.send(CUSTOMERS[0], text="Tagihan Anda terbit.")
    present = stack.client.send(CUSTOMERS[1], text="Tagihan Anda terbit.")

    status = stack.client.status(absent)
    assert status["status"] == "failed" and status["error"].startswith("not_on_whatsapp:")
    assert stack.wait_status(present, "sent", "delivered", "read")["status"] in ("sent", "delivered", "read")
    assert stack.ledger(CUSTOMERS[0]) == [] and len(stack.ledger(CUSTOMERS[1])) == 1
    # The email fallback was offered it (off in these settings: recorded as skipped)
    with stack.db() as db:
        from models import Message

        row = db.get(Message, absent)
        assert row is not None and (row.fallback_status, row.fallback_error) == ("skipped", "disabled")
