"""A dropped PostgreSQL connection (a restart, an idle timeout) is found and replaced: the pool
pings connections that sat idle, and a connection dropped the moment after it was used costs one
error flagged ``connection_invalidated``, after which the pool has new connections."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conftest import postgres_url
from models import db as models_db
from models.db import create, engine_for, session_scope

pytestmark = pytest.mark.integration


def _kill(url: str, pid: int) -> None:
    """What a PostgreSQL restart does to a pooled connection, from a connection of another engine."""
    other = create(url)
    with other.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def _backend(url: str) -> int:
    with session_scope(url) as db:
        return int(db.execute(text("SELECT pg_backend_pid()")).scalar_one())


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
