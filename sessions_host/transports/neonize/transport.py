"""``NeonizeTransport``: the ``Transport`` of a neonize session, in a child process (default) or in
this process, with its options."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from models.statuses import SessionStatus
from sessions_host.transports.base import (
    Event,
    EventSink,
    SendResult,
    SendTag,
    SessionError,
    StateChanged,
    TransientSendError,
)
from sessions_host.transports.errors import AmbiguousSendError
from sessions_host.transports.neonize.child import CHILD_BOOT, SEND_CALLS, ChildConfig
from sessions_host.transports.neonize.reconnect import Backoff
from sessions_host.transports.neonize.session import NeonizeSession
from sessions_host.transports.neonize.store import NeonizeStore
from sessions_host.transports.neonize.translate import BOT_TAG_ENV, DEFAULT_BOT_TAG, STREAM_REPLACED
from wa_tasks.core import transports

log = logging.getLogger(__name__)

# The transport ---------------------------------------------------------------------------------------


class NeonizeOptions(transports.NeonizeOptions):
    """A neonize session's ``transport_options`` (the schema is ``wa_tasks.core.transports``'), with the
    reconnect schedule they describe."""

    def backoff(self) -> Backoff:
        return Backoff(base=float(self.reconnect_base), cap=float(self.reconnect_cap), attempts=self.reconnect_attempts)


class NeonizeTransport:
    """One real WhatsApp session (implements ``Transport``); see the module docstring."""

    def __init__(
        self,
        session_id: str,
        store: NeonizeStore,
        *,
        isolate: bool = True,
        reconnect_base: float = 2.0,
        reconnect_cap: float = 60.0,
        reconnect_attempts: int = 10,
        call_timeout: float = 180.0,
        bot_tag: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.store = store
        self.isolate = isolate
        self.backoff = Backoff(base=reconnect_base, cap=reconnect_cap, attempts=reconnect_attempts)
        #: Longest wait for the child's answer to a call (whatsmeow waits up to ~75 s for a send ack).
        self.call_timeout = call_timeout
        #: None: the environment's NEONIZE_BOT_TAG, else "off".
        self.bot_tag = bot_tag
        self._on_event: EventSink = lambda event: None
        self._status: str = SessionStatus.DISCONNECTED
        self._last: StateChanged | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # In-process mode.
        self.session: NeonizeSession | None = None
        # Child-process mode.
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._pending: dict[int, tuple[Future[tuple[bool, Any]], str]] = {}
        self._ids = itertools.count(1)
        self._reached_connected = False

    # Transport interface -----------------------------------------------------------------------------

    def start(self, on_event: EventSink) -> None:
        self._on_event = on_event
        self._stopping.clear()
        if self.isolate:
            self._watcher = threading.Thread(
                target=self._watch_children, name=f"neonize-{self.session_id}-proc", daemon=True
            )
            self._watcher.start()
        else:
            self.session = NeonizeSession(self.session_id, self.store, self._relay, self.backoff, bot_tag=self.bot_tag)
            self.session.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.session is not None:
            self.session.stop()
            return
        with self._lock:
            conn, process = self._conn, self._process
        if conn is not None:
            try:
                with self._lock:
                    conn.send(("stop",))
            except (OSError, ValueError):
                pass
        if self._watcher is not None:
            self._watcher.join(timeout=20)
        if process is not None and process.poll() is None:
            log.warning("session %s: the neonize process did not stop; killing it", self.session_id, extra=self._extra)
            process.kill()
            process.wait(timeout=5)
        last = self._last
        if last is None or (last.status, last.detail) != (SessionStatus.DISCONNECTED, "stopped"):
            self._relay(StateChanged(status=SessionStatus.DISCONNECTED, detail="stopped"))

    @property
    def connected(self) -> bool:
        return self._status == SessionStatus.CONNECTED

    @property
    def status(self) -> str:
        return self._status

    def new_tag(self) -> SendTag:
        """A random ``messageSecret`` for the send, not an id: neonize 0.5.2 cannot send with an id
        chosen beforehand (``send_message`` takes none, and its library's ``SendMessage`` passes
        whatsmeow no ``SendRequestExtra``; ``generate_message_id`` only makes one up), so whatsmeow
        generates the id during the send. It stores the secret with that id before the message
        leaves, which is how a receipt for the id finds the send (``sent_secrets``)."""
        return SendTag(secret=secrets.token_hex(32))

    def send_text(self, jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        _no_chosen_id(tag)
        result: SendResult = self._call("send_text", jid, text, tag.secret if tag else None)
        return result

    def send_media(
        self,
        jid: str,
        data: bytes,
        mimetype: str,
        caption: str = "",
        filename: str | None = None,
        tag: SendTag | None = None,
    ) -> SendResult:
        _no_chosen_id(tag)
        secret = tag.secret if tag else None
        result: SendResult = self._call("send_media", jid, data, mimetype, caption, filename, secret)
        return result

    # Beyond the protocol -------------------------------------------------------------------------------

    def is_on_whatsapp(self, numbers: Sequence[str]) -> dict[str, bool]:
        answer: dict[str, bool] = self._call("is_on_whatsapp", list(numbers))
        return answer

    def send_typing(self, jid: str, typing: bool = True) -> None:
        self._call("send_typing", jid, typing)

    def mark_read(self, wa_message_id: str, sender: str) -> None:
        self._call("mark_read", wa_message_id, sender)

    def pair_phone(self, phone: str) -> str:
        code: str = self._call("pair_phone", phone)
        return code

    def logout(self) -> None:
        self._call("logout")

    # Plumbing ----------------------------------------------------------------------------------------

    @property
    def _extra(self) -> dict[str, str]:
        return {"session_id": self.session_id}

    def _relay(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            self._status = event.status
            self._last = event
            if event.status == SessionStatus.CONNECTED:
                self._reached_connected = True
        try:
            self._on_event(event)
        except Exception:
            log.exception("session %s: event sink failed", self.session_id, extra=self._extra)

    def _call(self, method: str, *args: Any) -> Any:
        if not self.isolate:
            if self.session is None:
                raise SessionError("client is nil: the neonize transport is not started")
            return getattr(self.session, method)(*args)
        future: Future[tuple[bool, Any]] = Future()
        with self._lock:
            conn = self._conn
            if conn is None:
                raise SessionError("the neonize process is not running")
            req_id = next(self._ids)
            self._pending[req_id] = (future, method)
            try:
                conn.send(("call", req_id, method, args))
            except (OSError, ValueError) as exc:
                self._pending.pop(req_id, None)
                raise SessionError(f"the neonize process is not reachable: {exc}") from exc
        try:
            ok, payload = future.result(timeout=self.call_timeout)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(req_id, None)
            detail = f"no answer from the neonize process within {self.call_timeout:.0f} s"
            if method in SEND_CALLS:
                raise AmbiguousSendError(f"{detail}: the message may have been sent") from None
            raise TransientSendError(detail) from None
        if ok:
            return payload
        raise payload

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Connection]:
        config = ChildConfig(
            session_id=self.session_id,
            store=self.store,
            backoff=self.backoff,
            bot_tag=self.bot_tag or os.environ.get(BOT_TAG_ENV) or DEFAULT_BOT_TAG,
            log_level=logging.getLogger().getEffectiveLevel(),
        )
        env = dict(os.environ)
        env[BOT_TAG_ENV] = config.bot_tag  # in the environment the Go runtime copies at load
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # import what the host imports
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD_BOOT, str(theirs.fileno()), self.session_id],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send(config)
        return process, conn

    def _watch_children(self) -> None:
        crashes = 0
        while not self._stopping.is_set():
            exit_text = "could not be started"
            try:
                process, conn = self._spawn()
            except Exception as exc:
                log.exception("session %s: cannot start the neonize process", self.session_id, extra=self._extra)
                exit_text = f"could not be started: {exc}"
            else:
                with self._lock:
                    self._process, self._conn = process, conn
                log.info("session %s: neonize process %s started", self.session_id, process.pid, extra=self._extra)
                self._read(conn)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
                with self._lock:
                    self._conn = None
                    pending, self._pending = self._pending, {}
                conn.close()
                exit_text = _describe_exit(process.returncode)
                self._fail_calls(pending, exit_text)
            if self._stopping.is_set() or self._needs_person():
                return
            if self._reached_connected:
                crashes, self._reached_connected = 0, False
            crashes += 1
            if crashes >= self.backoff.attempts:
                self._relay(
                    StateChanged(
                        status=SessionStatus.FAILED,
                        detail=f"the neonize process ended {crashes} times in a row; last: {exit_text}",
                    )
                )
                return
            delay = self.backoff.delay(crashes)
            log.error("session %s: the neonize process %s", self.session_id, exit_text, extra=self._extra)
            self._relay(
                StateChanged(
                    status=SessionStatus.DISCONNECTED,
                    detail=f"the neonize process {exit_text}; restarting it in {delay:.1f} s",
                )
            )
            self._stopping.wait(delay)

    def _needs_person(self) -> bool:
        """Was the last state one that no restart fixes (the child stays idle in it)?"""
        last = self._last
        if last is None:
            return False
        return last.status in (SessionStatus.LOGGED_OUT, SessionStatus.FAILED) or last.detail == STREAM_REPLACED

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            except Exception:
                log.exception("session %s: unreadable message from the neonize process", self.session_id)
                continue
            kind = message[0]
            if kind == "event":
                self._relay(message[1])
            elif kind == "reply":
                with self._lock:
                    entry = self._pending.pop(message[1], None)
                if entry is not None:
                    entry[0].set_result((message[2], message[3]))
            elif kind == "log":
                logging.getLogger(message[1]).log(message[2], "%s", message[3], extra=self._extra)

    def _fail_calls(self, pending: dict[int, tuple[Future[tuple[bool, Any]], str]], exit_text: str) -> None:
        for future, method in pending.values():
            error: Exception
            if method in SEND_CALLS:
                error = AmbiguousSendError(f"the neonize process {exit_text} during the send: it may have been sent")
            else:
                error = SessionError(f"the neonize process {exit_text}")
            future.set_result((False, error))

    @property
    def pid(self) -> int | None:
        """The child process's id (isolated mode, while it runs)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None


def _no_chosen_id(tag: SendTag | None) -> None:
    """A send given an id it cannot carry is refused before anything goes out: a receipt would
    otherwise be awaited for an id WhatsApp never sees (see ``NeonizeTransport.new_tag``)."""
    if tag is not None and tag.wa_message_id is not None:
        raise ValueError("neonize 0.5.2 cannot send with a chosen message id")


def sent_secrets(store: NeonizeStore, wa_message_id: str) -> list[str]:
    """The ``messageSecret`` (hex) whatsmeow stored with ``wa_message_id`` in the device store, if
    any: for a message this device sent with one (``NeonizeTransport.new_tag``), the secret its
    send carried. Incoming messages' secrets are stored too (another device chose them, so none is
    any send's). A store that cannot be read gives none."""
    try:
        if store.is_postgres:
            from sqlalchemy import text

            from models.db import create

            engine = create(re.sub(r"^postgres://", "postgresql://", store.location))
            try:
                with engine.connect() as conn:
                    keys = conn.execute(
                        text(f'SELECT key FROM "{store.schema}".whatsmeow_message_secrets WHERE message_id = :id'),
                        {"id": wa_message_id},
                    ).scalars()
                    return [bytes(k).hex() for k in keys]
            finally:
                engine.dispose()
        if not os.path.exists(store.location):
            return []
        # Read-only, beside the client that writes it (SQLite allows readers while it does).
        db = sqlite3.connect(f"{Path(store.location).resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = db.execute("SELECT key FROM whatsmeow_message_secrets WHERE message_id = ?", (wa_message_id,))
            return [bytes(k).hex() for (k,) in rows]
        finally:
            db.close()
    except Exception as exc:
        log.warning("device store %s not readable for message secrets: %s", store.describe(), exc)
        return []


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}" + (" (a Go panic aborts with SIGABRT)" if name == "SIGABRT" else "")
    return f"exited with code {code}"
