"""Fault drills: a 2,000-recipient bulk over three simulated sessions while a fault is
applied again and again: the worker killed with SIGKILL, the session host killed with SIGKILL,
wa-tasks' Redis (AOF, everysec) stopped and started again with nothing, a second or all of its
data lost, PostgreSQL's connections terminated. Each drill waits until every message is final and
checks, on the simulated network's recipient-side ledger, that nobody got a message twice and that
every message is accounted for; then it prints its counts.

The rule the checks hold the system to (README, "Delivery guarantees"): every message ends
``sent``/``delivered``/``read`` or ``failed``; each recipient is in the ledger at most once; a
message in the ledger is one the database says was sent, or a ``failed`` ``ambiguous_send`` (the
host died during that send: it may or may not have reached the phone, and it is never resent).
An interrupted send that reached the phone is resolved by its receipt (``confirmed_by = receipt``):
every one of them is, and none that did not reach it.

``WA_DRILL_SOAK=1`` runs each drill longer (10,000 recipients, a fault every few seconds
throughout); the default size keeps all drills within about 8 minutes on a 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text

from models import Message
from models.db import create
from support.stack import Stack
from support.workers import free_port
from wa_tasks.infra.redis_server import EmbeddedRedis
from wa_tasks.pipeline import lifecycle
from wa_tasks.settings import Settings

SOAK = os.environ.get("WA_DRILL_SOAK", "").lower() in ("1", "true", "yes")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600 if SOAK else 400)]
#: Recipients per drill.
RECIPIENTS = 10_000 if SOAK else 2_000
#: The bulk's sessions (the balanced policy shares the bulk between them) and their pace.
SESSIONS = ("wa-1", "wa-2", "wa-3")
PACE_SECONDS = 0.01
SENT = ("sent", "delivered", "read")


@dataclass
class Outcome:
    """What a drill measured, checked by :func:`_check` and printed."""

    drill: str
    faults: int
    seconds: float
    statuses: Counter[str]
    ambiguous: int
    failed_by_error: Counter[str]
    received: int
    duplicates: int
    #: Sends interrupted by a fault (left ambiguous, or resolved by their receipt); those of them
    #: that reached the phone; those resolved by their receipt that did, and that did not.
    interrupted: int = 0
    reached: int = 0
    resolved: int = 0
    wrongly_resolved: int = 0

    def line(self) -> str:
        sent = sum(self.statuses[s] for s in SENT)
        other = ", ".join(f"{n} {e}" for e, n in self.failed_by_error.most_common()) or "none"
        return (
            f"drill {self.drill}: {RECIPIENTS} messages, {self.faults} faults, {self.seconds:.0f}s; "
            f"sent {sent}, ambiguous {self.ambiguous}, other failures: {other}; "
            f"ledger {self.received}, duplicates {self.duplicates}; interrupted sends {self.interrupted}: "
            f"{self.reached} reached the phone, {self.resolved} of them resolved by their receipt, "
            f"{self.wrongly_resolved} resolved wrongly"
        )


def _error_kind(error: str | None) -> str:
    return (error or "?").split(":", 1)[0].split(" (after", 1)[0]


def _check(stack: Stack, drill: str, faults: int, started: float, rows: list[Message]) -> Outcome:
    ledger = stack.ledger()
    per_recipient = Counter(e.to for e in ledger)
    ambiguous = {m.to_number for m in rows if m.status == "failed" and (m.error_message or "").startswith("ambiguous")}
    others = [m for m in rows if m.status == "failed" and m.to_number not in ambiguous]
    by_receipt = {m.to_number for m in rows if m.confirmed_by == lifecycle.BY_RECEIPT}
    outcome = Outcome(
        drill=drill,
        faults=faults,
        seconds=time.monotonic() - started,
        statuses=Counter(m.status for m in rows),
        ambiguous=len(ambiguous),
        failed_by_error=Counter(_error_kind(m.error_message) for m in others),
        received=len(ledger),
        duplicates=sum(n - 1 for n in per_recipient.values() if n > 1),
        interrupted=len(ambiguous | by_receipt),
        reached=len((ambiguous | by_receipt) & set(per_recipient)),
        resolved=len(by_receipt & set(per_recipient)),
        wrongly_resolved=len(by_receipt - set(per_recipient)),
    )
    print(outcome.line())
    # Every interrupted send that reached the phone was resolved by its receipt, and only those.
    assert outcome.resolved == outcome.reached and outcome.wrongly_resolved == 0, outcome.line()
    # Every message is final, and no recipient got one twice.
    assert len(rows) == RECIPIENTS and sum(outcome.statuses[s] for s in (*SENT, "failed")) == RECIPIENTS
    assert outcome.duplicates == 0, [to for to, n in per_recipient.items() if n > 1][:10]
    # What the database calls sent reached the phone; what reached the phone was sent or ambiguous.
    sent = {m.to_number for m in rows if m.status in SENT}
    assert sent <= set(per_recipient), sorted(sent - set(per_recipient))[:10]
    assert set(per_recipient) <= sent | ambiguous, sorted(set(per_recipient) - sent - ambiguous)[:10]
    assert all(
        m.error_message and m.error_message.startswith(lifecycle.AMBIGUOUS_SEND)
        for m in rows
        if m.to_number in ambiguous
    )
    return outcome


def _drill(
    stack: Stack, name: str, fault: Callable[[], None], every: float, max_faults: int, first: float | None = None
) -> Outcome:
    """Run the bulk, apply ``fault`` every ``every`` seconds (the first time after ``first``)
    until the bulk is final (at most ``max_faults`` times), then check the outcome."""
    # Given three sessions sharing the bulk, and a sweeper that republishes stale messages quickly
    stack.env["WA_SWEEP_AFTER_SECONDS"] = "2"
    stack.env["WA_ROUTING_POLICY"] = "balanced"
    for i, session_id in enumerate(SESSIONS, 1):
        stack.add_session(session_id, priority=i, pace_seconds=PACE_SECONDS)
    stack.start()
    stack.wait_connected(*SESSIONS)

    # When the bulk runs, with the sweeper running every second as beat would, and the fault
    # applied every few seconds while messages are still on their way
    started = time.monotonic()
    faults = 0
    with stack.beat("wa.sweep", every=1.0):
        recipients = [{"whatsapp": f"0812{i:08d}", "data": {"n": i}} for i in range(RECIPIENTS)]
        stack.client.send_bulk(recipients, text="Tagihan bulan ini sudah terbit")
        while faults < max_faults:
            time.sleep(every if faults or first is None else first)
            statuses = stack.statuses()
            if sum(statuses[s] for s in (*SENT, "failed")) == RECIPIENTS:
                break
            fault()
            faults += 1

        # Then every message becomes final, and the receipts of interrupted sends come
        stack.wait_final(RECIPIENTS, timeout=RECIPIENTS * 0.1)
        rows = _wait_receipts(stack)
    return _check(stack, name, faults, started, rows)


def _wait_receipts(stack: Stack, timeout: float = 60.0) -> list[Message]:
    """Every row, once no ambiguous send is on the ledger any more (its receipt resolved it) or
    after ``timeout`` (the check then says which were not resolved)."""
    deadline = time.monotonic() + timeout
    while True:
        with stack.db() as db:
            rows = list(db.scalars(select(Message)).all())
        received = {e.to for e in stack.ledger()}
        waiting = [
            m
            for m in rows
            if m.status == "failed"
            and (m.error_message or "").startswith(lifecycle.AMBIGUOUS_PREFIX)
            and m.to_number in received
        ]
        if not waiting or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


MAX_FAULTS = 60 if SOAK else 12


def test_worker_killed_every_3s_mid_bulk(stack: Stack) -> None:
    outcome = _drill(stack, "worker SIGKILL", lambda: stack.kill("worker"), every=3.0, max_faults=MAX_FAULTS)

    # And the worker never sends, so no send was interrupted: nothing is ambiguous, nothing failed
    assert outcome.ambiguous == 0 and not outcome.failed_by_error, outcome.line()
    assert outcome.faults >= 3, "the bulk ended before the drill killed anything"


def test_session_host_killed_every_4s_mid_bulk(stack: Stack) -> None:
    outcome = _drill(stack, "session host SIGKILL", lambda: stack.kill("sessions"), every=4.0, max_faults=MAX_FAULTS)

    # And only sends interrupted by a kill are ambiguous: at most one per session per kill
    assert outcome.ambiguous <= outcome.faults * len(SESSIONS), outcome.line()
    assert not outcome.failed_by_error, outcome.line()
    assert outcome.faults >= 3, "the bulk ended before the drill killed anything"


@pytest.fixture
def own_redis(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    """A stack whose broker is a Redis of its own, started the way ``wa-tasks up`` starts it (AOF,
    appendfsync everysec, noeviction), so that the drill can stop it. The simulated WhatsApp
    network stays on the tests' Redis: WhatsApp does not restart with wa-tasks' Redis."""
    directory = Path(tempfile.mkdtemp(prefix="wa-drill-redis-"))  # short: a Unix socket lives here
    server = EmbeddedRedis(directory, persistent=True, port=free_port())
    server.start()
    own = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{server.port}/0", "sim_redis_url": settings.redis}
    )
    logdir = tmp_path / "logs"
    logdir.mkdir()
    stack = Stack(own, logdir)
    try:
        yield stack, server
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print("broker keys:", _describe_keys(stack))
        stack.stop()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _describe_keys(stack: Stack) -> dict[str, object]:
    """Every key of the broker Redis with its type and size (lists, hashes, sets), for a failed drill."""
    found: dict[str, object] = {}
    try:
        for key in sorted(stack.redis.scan_iter(count=1000)):
            kind = stack.redis.type(key)
            size = {"list": stack.redis.llen, "hash": stack.redis.hlen, "set": stack.redis.scard}.get(kind)
            found[key] = f"{kind} {size(key)}" if size else kind
    except Exception as exc:  # the report must not hide the failure
        found["error"] = repr(exc)
    return found


LOSSES = ["sigterm", "sigkill-lost-second", "sigkill-data-lost"]


@pytest.mark.parametrize("loss", LOSSES)
def test_redis_restarted_mid_bulk(own_redis: tuple[Stack, EmbeddedRedis], loss: str) -> None:
    """``sigterm``: Redis writes its AOF and exits; nothing is lost.

    ``sigkill-lost-second``: SIGKILL alone loses nothing: Redis writes each command to the AOF
    before it replies, and ``appendfsync everysec`` only delays the fsync, which matters when the
    machine loses power, not the process. So this variant makes the kill as bad as a power loss:
    Redis comes back with its AOF as it was a second before the kill, the most everysec can lose
    (publishes of dispatch and deliver tasks, acknowledgements, pace slots, live states). The first
    restart loses the second in which the bulk is being routed.

    ``sigkill-data-lost``: Redis comes back empty, as a Redis without persistence (or one whose
    disk was lost) does: every queued task, every unacknowledged message, every lease is gone."""
    stack, server = own_redis
    aof = server.directory / "appendonlydir"
    restarts = 0

    def restart() -> None:
        nonlocal restarts
        assert server.process is not None
        before = server.directory / "aof-a-second-before"
        if loss == "sigkill-lost-second":
            shutil.rmtree(before, ignore_errors=True)
            shutil.copytree(aof, before)
            time.sleep(1.0)
        server.process.send_signal(signal.SIGTERM if loss == "sigterm" else signal.SIGKILL)
        server.process.wait()
        if loss == "sigkill-lost-second":
            shutil.rmtree(aof)
            before.rename(aof)
        elif loss == "sigkill-data-lost":
            shutil.rmtree(aof)
            (server.directory / "dump.rdb").unlink(missing_ok=True)
        time.sleep(1.0)  # down for a second
        server.start()
        restarts += 1

    first = 0.0 if loss == "sigkill-lost-second" else None
    outcome = _drill(stack, f"Redis {loss} restart", restart, every=5.0, max_faults=MAX_RESTARTS, first=first)

    # And a Redis restart interrupts no send for good: nothing failed, nothing is ambiguous
    assert outcome.ambiguous == 0 and not outcome.failed_by_error, outcome.line()
    assert restarts >= 2, "the bulk ended before Redis was restarted twice"


MAX_RESTARTS = 30 if SOAK else 4


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_connections_dropped_mid_bulk(stack: Stack) -> None:
    admin = create(stack.settings.database).execution_options(isolation_level="AUTOCOMMIT")
    dropped = 0

    def drop() -> None:
        # Every other backend of the test database: the worker's, the session host's and this
        # process' own pooled connections, idle or in the middle of a transaction.
        nonlocal dropped
        with admin.connect() as conn:
            dropped += len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )

    try:
        outcome = _drill(stack, "PostgreSQL connections dropped", drop, every=4.0, max_faults=MAX_FAULTS)
    finally:
        admin.dispose()
    print(f"  {dropped} PostgreSQL connections terminated")

    # And a dropped connection interrupts no send for good: nothing failed, nothing is ambiguous
    assert outcome.ambiguous == 0 and not outcome.failed_by_error, outcome.line()
    assert outcome.faults >= 3 and dropped > outcome.faults, "the drill dropped (almost) nothing"
