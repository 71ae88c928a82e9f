"""Routing's affinity in one process (``tests/support/inproc.py``): a customer keeps getting messages
from the number that last sent to or heard from them while that number is usable, even when
another has the higher priority; when it is down, the next takes over; a requested session still
wins. The same on real processes: ``tests/integration/test_affinity_pipeline.py``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import event

from models.db import engine_for
from support.inproc import InProcess
from wa_tasks import client
from wa_tasks.core import task_names

KNOWN = "6281234567890"  #: a customer wa-2 has messaged
NEW = "6281298765432"  #: a customer no number knows


@pytest.fixture
def two(make_inproc: Callable[..., InProcess]) -> InProcess:
    """wa-1 (priority 1, the primary) and wa-2 (priority 2)."""
    running = make_inproc()
    running.add_session("WA-1", priority=1)
    running.add_session("WA-2", priority=2)
    return running


def sent_by(inproc: InProcess, number: str, text: str, **kwargs: object) -> str:
    message_id = client.send(number, text=text, **kwargs)  # type: ignore[arg-type]
    view = inproc.settle(message_id, "delivered")
    [entry] = [e for e in inproc.ledger(number) if e.text == text]
    assert entry.session == view["sessionId"]
    return str(view["sessionId"])


def test_a_customer_sent_by_the_second_number_keeps_it_while_it_is_usable(two: InProcess) -> None:
    assert sent_by(two, KNOWN, "Tagihan 1", session="wa-2") == "wa-2"  # pinned: the customer now knows wa-2

    assert sent_by(two, KNOWN, "Tagihan 2") == "wa-2"  # wa-1 has the higher priority, wa-2 knows them
    assert sent_by(two, KNOWN, "Tagihan 3") == "wa-2"
    assert sent_by(two, NEW, "Tagihan baru") == "wa-1"  # a stranger to both: the policy's choice
    assert sent_by(two, KNOWN, "Tagihan 4", session="wa-1") == "wa-1"  # a requested session still wins
    assert sent_by(two, KNOWN, "Tagihan 5") == "wa-1"  # and the customer now knows wa-1 last


def test_when_the_known_number_is_down_the_next_takes_the_customer(two: InProcess) -> None:
    assert sent_by(two, KNOWN, "Tagihan 1", session="wa-2") == "wa-2"
    two.simnet.drop("wa-2")
    two.wait_for(lambda: two.live_status("wa-2") == "disconnected", "wa-2 down for routing", run=False)

    assert sent_by(two, KNOWN, "Tagihan 2") == "wa-1"  # failover still moves the customer

    two.simnet.restore("wa-2")
    two.wait_for(lambda: two.live_status("wa-2") == "connected", "wa-2 back for routing", run=False)
    assert sent_by(two, KNOWN, "Tagihan 3") == "wa-1"  # wa-1 sent last: it is the one they know now


def test_a_customer_who_wrote_to_a_number_is_answered_from_it(two: InProcess) -> None:
    two.simnet.reply("wa-2", KNOWN, "Berapa tagihan saya?")
    two.wait_for(lambda: _incoming(two) == 1, "the customer's message stored", run=False)

    assert sent_by(two, KNOWN, "Tagihan Anda Rp150.000") == "wa-2"


def test_a_bulk_batch_keeps_each_customer_on_their_number_in_one_affinity_query(two: InProcess) -> None:
    knows_wa2 = [f"62812000000{i:02d}" for i in range(3)]
    for number in knows_wa2:
        sent_by(two, number, "Halo", session="wa-2")
    strangers = [f"62813000000{i:02d}" for i in range(3)]
    statements: list[str] = []
    engine = engine_for(two.settings.database)

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    before = len(two.broker.history)
    event.listen(engine, "before_cursor_execute", record)
    try:
        job_id = client.send_bulk([{"whatsapp": n} for n in knows_wa2 + strangers], text="Promo akhir tahun.")
        two.wait_for(lambda: client.bulk_status(job_id)["delivered"] == 6, "every bulk message delivered")
    finally:
        event.remove(engine, "before_cursor_execute", record)

    bulk = [task.name for task in two.broker.history[before:] if task.name != task_names.DELIVER]
    assert bulk == [task_names.DISPATCH_BATCH]  # the whole bulk routed by one batch, no single dispatch
    for number in knows_wa2:
        assert [e.session for e in two.ledger(number) if e.text == "Promo akhir tahun."] == ["wa-2"]
    for number in strangers:
        assert [e.session for e in two.ledger(number)] == ["wa-1"]
    affinity_reads = [s for s in statements if "whatsapp_incoming" in s and "row_number" in s.lower()]
    assert len(affinity_reads) == 1


def _incoming(inproc: InProcess) -> int:
    from sqlalchemy import func, select

    from models import IncomingMessage
    from models.db import session_scope

    with session_scope(inproc.settings.database) as db:
        return int(db.scalar(select(func.count()).select_from(IncomingMessage)) or 0)


def test_a_message_routed_to_the_known_number_that_then_drops_moves_to_the_other(two: InProcess) -> None:
    assert sent_by(two, KNOWN, "Tagihan 1", session="wa-2") == "wa-2"
    message_id = client.send(KNOWN, text="Tagihan 2")
    two.run(steps=1)  # the dispatch: routed to wa-2, the number the customer knows
    assert client.status(message_id)["sessionId"] == "wa-2"

    two.simnet.drop("wa-2")
    two.wait_for(lambda: not two.runner("wa-2").transport.connected, "wa-2 disconnected", run=False)
    view = two.settle(message_id, "delivered")

    assert view["sessionId"] == "wa-1"  # handed back and excluded: affinity does not send it back to wa-2
    assert [e.session for e in two.ledger(KNOWN) if e.text == "Tagihan 2"] == ["wa-1"]
