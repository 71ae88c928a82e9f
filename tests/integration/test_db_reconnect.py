"""A dropped PostgreSQL connection (a restart, an idle timeout) is found and replaced: the pool
pings connections that sat idle, and a connection dropped the moment after it was used costs one
error flagged ``connection_invalidated``, after which the pool has new connections."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from conftest import postgres_url
from models import Message
from models import db as models_db
from models.db import create, engine_for, session_scope
from sessions_host.delivery import Deliverer, Outcome
from sessions_host.safety import Decision
from sessions_host.transports.base import (
    AmbiguousSendError,
    RecipientError,
    SendResult,
    SendTag,
    SessionError,
    TransientSendError,
)
from wa_tasks.admin import session_config as manage
from wa_tasks.infra.celery_app import app_for
from wa_tasks.pipeline import lifecycle
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


def _kill(url: str, pid: int) -> None:
    """What a PostgreSQL restart does to a pooled connection, from a connection of another engine."""
    other = create(url)
    with other.begin() as conn:
        # pg_terminate_backend(pid, timeout) waits until the backend is gone: the next use of the
        # connection meets a closed socket, not a backend still on its way out.
        conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    other.dispose()


def _backend(url: str, *, autocommit: bool = False) -> int:
    """The backend of the next connection the engine hands out (its pool's only one, just disposed)."""
    with engine_for(url, autocommit=autocommit).connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def postgres() -> str:
    """Connection drops are a PostgreSQL matter: these tests run on PostgreSQL only."""
    return postgres_url()


def test_an_idle_connection_that_was_dropped_is_replaced_before_use(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pooled connection that the server dropped while it sat idle
    monkeypatch.setattr(models_db, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine_for(postgres).dispose()
    before = _backend(postgres)
    _kill(postgres, before)
    time.sleep(0.3)
    # When it is next handed out, Then the ping finds it dead and the work runs on a new one
    assert _backend(postgres) != before


def test_a_connection_dropped_right_after_use_fails_once_flagged_then_recovers(postgres: str) -> None:
    # Given a connection handed back a moment ago (so not pinged again), dropped by the server
    engine_for(postgres).dispose()
    pid = _backend(postgres)
    _kill(postgres, pid)
    # When it is used at once, Then the error says the connection is gone (callers retry on that)
    with pytest.raises(DBAPIError) as raised:
        _backend(postgres)
    assert raised.value.connection_invalidated
    # And the next use gets a new connection
    assert _backend(postgres) != pid


class _DroppingTransport:
    """A connected transport whose send drops the session host's pooled database connection (as a
    PostgreSQL restart would, in the middle of a send), then gives ``outcome``: the write that
    records what became of the message is the first to meet the dead connection."""

    connected = True
    #: The backend of the one pooled connection, which the claim and then the record use.
    backend = 0

    def __init__(self, url: str, outcome: Exception | None) -> None:
        self.url = url
        self.outcome = outcome

    def new_tag(self) -> SendTag:
        return SendTag()

    def send_text(self, to_jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        _kill(self.url, self.backend)
        if self.outcome is not None:
            raise self.outcome
        return SendResult(wa_message_id="WA-1")


class _OpenGate:
    """Pacing, caps and ban safety all allow the send (they are not what is tested here)."""

    def recipient_wait(self, number: str, message_id: str) -> float:
        return 0.0

    def take_slot(self) -> bool:
        return True

    def safety_check(self, number: str) -> tuple[Decision, bool]:
        return Decision(True), False

    def safety_sent(self, number: str, is_new: bool) -> None:
        pass

    def restricted(self, reason: str, until: float | None) -> None:
        pass


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("outcome", "expected_outcome", "expected_status", "error"),
    [
        (None, Outcome.SENT, "sent", None),
        (RecipientError("not on WhatsApp"), Outcome.FAILED, "failed", "recipient: not on WhatsApp"),
        (TransientSendError("timeout"), Outcome.RETRY, "queued", "timeout"),
        (SessionError("logged out"), Outcome.REROUTED, "queued", "session wa-1: logged out"),
        (AmbiguousSendError("lost"), Outcome.AMBIGUOUS, "failed", f"{lifecycle.AMBIGUOUS_SEND} (lost)"),
    ],
    ids=["sent", "recipient", "transient", "session", "ambiguous"],
)
def test_the_outcome_of_a_send_is_recorded_through_a_dropped_connection(
    settings: Settings,
    outcome: Exception | None,
    expected_outcome: Outcome,
    expected_status: str,
    error: str | None,
) -> None:
    # Given a message routed to wa-1, and a send during which the database drops the connection
    url = settings.database
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    with session_scope(url) as db:
        message = Message(to_number="6281200000001", content="Tagihan", status="routed", session_id="wa-1")
        db.add(message)
        db.flush()
        message_id = message.id
    transport = _DroppingTransport(url, outcome)
    engine_for(url).dispose()
    transport.backend = _backend(url)
    deliverer = Deliverer(app_for(settings), settings, "wa-1", transport, _OpenGate())  # type: ignore[arg-type]

    # When it is delivered
    result = deliverer.deliver(message_id)

    # Then what became of it is written, not lost with the connection (which would leave it
    # "sending", to be failed later as an ambiguous send)
    assert result == expected_outcome
    with session_scope(url) as db:
        row = db.get(Message, message_id)
        assert row is not None
        assert (row.status, row.error_message) == (expected_status, error)
        assert row.attempts == (0 if isinstance(outcome, SessionError) else 1)


class _DroppingGate(_OpenGate):
    """Drops the session host's pooled database connection at ban safety's check: after the
    message was read, before it is claimed."""

    def __init__(self, url: str, backend: int) -> None:
        self.url, self.backend = url, backend

    def safety_check(self, number: str) -> tuple[Decision, bool]:
        _kill(self.url, self.backend)
        return Decision(True), False


def _routed_message(settings: Settings) -> str:
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    with session_scope(settings.database) as db:
        message = Message(to_number="6281200000001", content="Tagihan", status="routed", session_id="wa-1")
        db.add(message)
        db.flush()
        return message.id


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_dropped_before_the_claim_leaves_the_message_to_be_delivered_again(settings: Settings) -> None:
    # Given a message routed to wa-1, and the session host's connection for reads and claims
    # dropped between its read and its claim
    url = settings.database
    message_id = _routed_message(settings)
    engine_for(url, autocommit=True).dispose()
    transport = _DroppingTransport(url, None)
    gate = _DroppingGate(url, _backend(url, autocommit=True))
    deliverer = Deliverer(app_for(settings), settings, "wa-1", transport, gate)  # type: ignore[arg-type]

    # When it is delivered, Then the delivery fails (its task goes back on the queue) with nothing sent
    with pytest.raises(DBAPIError):
        deliverer.deliver(message_id)
    # And the message is still routed with no attempt counted, not left "sending" (which would be
    # failed as an ambiguous send)
    with session_scope(url) as db:
        row = db.get(Message, message_id)
        assert row is not None and (row.status, row.attempts, row.wa_message_id) == ("routed", 0, None)

    # And delivered again, it is sent once
    engine_for(url).dispose()
    transport.backend = _backend(url)
    assert deliverer.deliver(message_id) == Outcome.SENT


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_dropped_right_after_the_claim_does_not_stop_the_send(settings: Settings) -> None:
    # Given a message routed to wa-1, and the session host's connection for reads and claims
    # dropped right after its claim was committed, before it goes back to the pool
    url = settings.database
    message_id = _routed_message(settings)
    claims = engine_for(url, autocommit=True)
    claims.dispose()
    backend = _backend(url, autocommit=True)

    def drop_after_the_claim(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith("UPDATE whatsapp_messages SET status"):
            _kill(url, backend)

    event.listen(claims, "after_cursor_execute", drop_after_the_claim)
    try:
        engine_for(url).dispose()
        transport = _DroppingTransport(url, None)
        transport.backend = _backend(url)
        deliverer = Deliverer(app_for(settings), settings, "wa-1", transport, _OpenGate())  # type: ignore[arg-type]

        # When it is delivered, Then it is sent: the claim stands, and returning its dead
        # connection to the pool does not fail the delivery (which would leave it "sending", to be
        # failed later as an ambiguous send that never went out)
        assert deliverer.deliver(message_id) == Outcome.SENT
    finally:
        event.remove(claims, "after_cursor_execute", drop_after_the_claim)
    with session_scope(url) as db:
        row = db.get(Message, message_id)
        assert row is not None and (row.status, row.attempts) == ("sent", 1)
