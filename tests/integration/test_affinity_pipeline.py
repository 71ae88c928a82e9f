"""Routing's affinity on the real pipeline (real worker and session host, simulated network): a
customer keeps getting messages from the number that last sent to them while it is usable, even
when another number has the higher priority, and the other number takes them when it is down
(a customer moved to another number is a stranger to it: ``wa_tasks/core/routing.py``). The
in-process twin: ``tests/inproc/test_inproc_affinity.py``."""

from __future__ import annotations

import pytest

from support.stack import Stack

pytestmark = pytest.mark.integration

KNOWN = "6281234567890"  #: a customer wa-2 has messaged
NEW = "6281298765432"  #: a customer neither number knows


def sent_from(stack: Stack, number: str, text: str, **kwargs: object) -> str:
    """Send, wait until it is sent, and return the session the recipient's phone got it from."""
    message_id = stack.client.send(number, text=text, **kwargs)  # type: ignore[arg-type]
    status = stack.wait_status(message_id, "sent", "delivered", "read")
    [entry] = [e for e in stack.ledger(number) if e.text == text]
    assert entry.session == status["sessionId"]
    return str(entry.session)


def test_a_customer_sent_by_the_second_number_keeps_it_until_it_is_down(stack: Stack) -> None:
    # Given wa-1 (priority 1, the primary) and wa-2, and a customer wa-2 has sent to
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2)
    stack.start()
    stack.wait_connected("wa-1", "wa-2")
    assert sent_from(stack, KNOWN, "Tagihan November", session="wa-2") == "wa-2"

    # Then the customer's next messages come from wa-2, while a new customer gets the primary
    assert sent_from(stack, KNOWN, "Pengingat H-3") == "wa-2"
    assert sent_from(stack, NEW, "Tagihan pelanggan baru") == "wa-1"
    assert sent_from(stack, KNOWN, "Pengingat H-1") == "wa-2"

    # When wa-2 is down, wa-1 takes the customer
    stack.simnet.drop("wa-2")
    stack.wait_down("wa-2")
    assert sent_from(stack, KNOWN, "Pengingat jatuh tempo") == "wa-1"

    # And every message reached its recipient exactly once
    ledger = stack.ledger()
    assert len(ledger) == 5 and len({e.wa_message_id for e in ledger}) == 5
