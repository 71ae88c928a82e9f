"""Engines and database sessions: one engine per URL per process, SQLite tuned for several processes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

#: What a write of a message's lifecycle runs on: an ORM session, or a Core connection where no ORM
#: object is loaded (the session host's claim and outcomes: the session's unit-of-work bookkeeping
#: around each statement and commit cost about a tenth of the host's CPU a message).
Db = Session | Connection

_lock = threading.Lock()
_engines: dict[tuple[int, str, bool], Engine] = {}
_factories: dict[tuple[int, str], sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the worker, the session host and the web read while one of them writes;
    # busy_timeout makes a writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3, not installed)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def create(url: str, *, autocommit: bool = False) -> Engine:
    """A new engine for ``url``; creates the SQLite file's folder when needed. ``autocommit``: every
    statement commits on its own (its connections are never switched between modes: switching one
    back as it returns to the pool fails on a dropped connection, after its statement committed)."""
    url = normalize_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if autocommit:
        kwargs["isolation_level"] = "AUTOCOMMIT"
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.update(pool_size=10, max_overflow=20)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


#: A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that sat idle in the pool: PostgreSQL drops
    (a restart, an idle timeout, a failover) are still found before a connection is used, while a
    connection handed back a moment ago (a session host's claim, then its ``sent``) is not pinged
    again: that ping would cost ≈12 % of the session host's time. A drop in that moment surfaces as an
    error with ``connection_invalidated`` set (the pool then replaces every connection); callers
    whose write must not be lost retry it once (sessions_host.delivery)."""

    @event.listens_for(engine, "connect")
    def _connected(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi)
        except Exception:
            alive = False
        if not alive:
            raise DisconnectionError("pooled connection found dead by the idle ping; reconnecting")


def engine_for(url: str, *, autocommit: bool = False) -> Engine:
    """The engine for ``url`` in this process (a forked child gets its own); ``autocommit``: see
    :func:`create`."""
    key = (os.getpid(), url, autocommit)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create(url, autocommit=autocommit)
        return engine


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()


def _factory_for(url: str) -> sessionmaker[Session]:
    """The session factory for ``url`` in this process: made once, as building one (a Session
    class and its event dispatch) cost a measurable part of each short transaction."""
    key = (os.getpid(), url)
    factory = _factories.get(key)
    if factory is None:
        factory = sessionmaker(bind=engine_for(url), expire_on_commit=False)
        with _lock:
            factory = _factories.setdefault(key, factory)
    return factory


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A database session that commits on success and rolls back on error."""
    session = _factory_for(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def write_through_disconnects(url: str, write: Callable[[Connection], object], attempts: int = 5) -> None:
    """Run ``write`` in a transaction of its own; if the connection drops under it (a database
    restart or failover, an administrator's ``pg_terminate_backend``), run it again on a new
    connection, waiting 0.5, 1, 2 … s in between. For the few writes that must not be lost to a
    dropped connection, such as the record that a message was sent: ``write`` must be safe to
    run twice (a conditional update), as the commit of a dropped try may have happened."""
    for attempt in range(1, attempts + 1):
        try:
            with engine_for(url).begin() as connection:
                write(connection)
            return
        except DBAPIError as exc:
            if not exc.connection_invalidated or attempt == attempts:
                raise
            log.warning("database connection lost (%s); writing again", str(exc.orig).strip())
            time.sleep(0.5 * 2 ** (attempt - 1))
