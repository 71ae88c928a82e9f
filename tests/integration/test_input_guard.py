"""A phone number holding a letter or an extension is refused, not read as another valid number,
where it reaches a running session host: contact sync (which would ask WhatsApp about, and cache,
the other number) and pairing by phone code (which would link the session to it). The caller is
told what they sent; the session host's log masks it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import func, select

from models import WhatsAppContact
from support.stack import Stack
from wa_tasks.core.phone import mask
from wa_tasks.errors import InvalidPhoneNumber, OptedOut
from wa_tasks.pipeline import optout

pytestmark = pytest.mark.integration

#: phonenumbers alone reads it as 0812-3456-789 (628123456789), a valid number of someone else.
WITH_LETTER = "0812 3456 789x"


def test_contact_sync_refuses_a_number_with_a_letter_and_asks_whatsapp_nothing(stack: Stack) -> None:
    # Given a connected session that could ask WhatsApp about any number
    stack.add_session("wa-1", priority=1)
    stack.start("sessions")
    stack.wait_connected("wa-1")

    # When billing syncs a customer list holding a number with a trailing letter
    with pytest.raises(InvalidPhoneNumber) as refused:
        stack.client.sync_contacts(["0812-3456-7890", WITH_LETTER])

    # Then the error quotes that number, and nothing was asked of WhatsApp or cached
    assert str(refused.value).startswith(f"{WITH_LETTER!r} is not a phone number: it holds 'x'")
    assert "command check_numbers" not in stack.log_text("sessions")
    with stack.db() as db:
        assert db.scalar(select(func.count()).select_from(WhatsAppContact)) == 0

    # And the same list without it is checked as usual
    assert stack.client.sync_contacts(["0812-3456-7890"]) == {"6281234567890": True}


def test_pairing_by_phone_refuses_a_number_with_a_letter_and_the_host_log_masks_it(stack: Stack) -> None:
    # Given a session waiting to be linked, on a running session host
    stack.add_session("wa-1", priority=1, options={"auto_pair": False})
    stack.start("sessions")
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "qr", "showing a QR code", 30)

    # When the operator asks for a pairing code for a number with a trailing letter
    done = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "sessions", "pair", "wa-1", "--phone", WITH_LETTER],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Then no code is given, and the operator is told which number was refused
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert f"{WITH_LETTER!r} is not a phone number" in output, output
    assert "Traceback" not in output
    # And the session host's log line about the command masks the number
    stack.wait_for_log("sessions", "command pair on session wa-1")
    log = stack.log_text("sessions")
    assert WITH_LETTER not in log
    assert f"{mask(WITH_LETTER)!r} is not a phone number" in log, log


def test_a_promotion_refused_for_an_opted_out_customer_names_the_number_and_logs_it_masked(stack: Stack) -> None:
    # Given a customer who replied STOP, and a promotion template
    optout.record(stack.settings, "6281234567890", keyword="STOP")
    stack.client.create_template("promo", "Diskon {{bulan}}!", category="promotion")

    # When billing sends them the promotion
    with pytest.raises(OptedOut) as refused:
        stack.client.send("0812-3456-7890", template="promo", data={"bulan": "Juli"})

    # Then the error names the recipient; its log form masks it
    assert str(refused.value).startswith("6281234567890 opted out of promotions")
    assert refused.value.loggable.startswith(f"{mask('6281234567890')} opted out of promotions")
    assert "6281234567890" not in refused.value.loggable
