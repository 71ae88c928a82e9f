"""The real WhatsApp transport: one linked device per session, on neonize 0.5.2 (whatsmeow inside).

``NeonizeTransport`` implements ``Transport`` (base.py): ``start``/``stop``, ``connected``,
``send_text``, ``send_media``; beyond the protocol it offers ``is_on_whatsapp``, ``send_typing``,
``pair_phone`` (8-character code, valid once the first QR code was shown) and ``logout``.
shared/notes/neonize.md lists the library facts this module relies on.

Decisions
---------
**Process isolation (default on).** A neonize client can abort its whole process: a Go panic
(``get_me()`` before connect, a ``jid`` missing from the store, or a whatsmeow bug) is a SIGABRT,
not a Python exception. So each session's client runs in a child process of its own: a fresh
interpreter started with ``subprocess`` (never a fork: the Go runtime and the host's threads do not
survive one; nor ``multiprocessing``'s spawn, which re-imports the host's main module), talking
over a socket pair with ``multiprocessing.connection``. The parent keeps the ``Transport``
interface: calls go down (``send_text`` …); events, call results and log records come up. A crash
kills one session: the parent reports ``disconnected`` ("the neonize process was killed by
SIGABRT …"), fails the call in flight, and starts a new child after the reconnect backoff; after
``reconnect_attempts`` crashes in a row it reports ``failed``. A send in flight when the child
dies, or one the child does not answer within ``call_timeout``, raises ``AmbiguousSendError``: the
message may have gone out, so it is not resent. The cost is one Python interpreter plus a Go
runtime per neonize session (about 90 MB resident), fine for the handful of numbers an ISP operator runs;
the simulated transport stays in-process. Isolation also confines neonize's import side effects
(``logging.basicConfig``, a log thread, non-daemon connect threads) and its unlocked Go-side client
maps to one client per process. The option ``isolate: false`` runs the client in the host process
instead (cheaper; the tests use it to drive the registered handlers), and then a Go panic takes the
whole host down with every session in it.

**NEONIZE_BOT_TAG.** neonize adds a ``<bot biz_bot="1"/>`` node to 1:1 messages unless
``NEONIZE_BOT_TAG=off``; recipients then see the message labelled as automated ("AI"), and the
account's traffic is flagged as a bot's. Billing notices from an operator's own number should look
like the operator's messages, so the default here is ``off``. An operator who wants the tag sets
``NEONIZE_BOT_TAG`` in the session host's environment; that value is passed on unchanged. The Go
runtime copies the environment when the library loads, so the value must be in place before
``import neonize``: the child process sets it before its first import; in-process mode sets it
(unless already set) before importing and warns when neonize was already loaded.

**Device store.** whatsmeow keeps each device's keys in a database. SQLite (the embedded default):
one file per session, ``<data_dir>/neonize/<session_id>.db``, created with mode 0600 in a 0700
folder before neonize touches it (SQLite gives its journal files the same mode). PostgreSQL: the
project's database, with one schema per session (``neonize_<id>_<hash>``, set through
``search_path``), because neonize without a ``jid`` resumes *the first device in the store*: in one
shared schema every session would resume the same number. No ``jid`` is ever passed to
``NewClient`` (a ``jid`` not in the store makes Go panic, and a ``jid`` replaces the ``uuid`` that
keys the client); the store's device list (``ClientFactory.get_all_devices_from_db``, a plain
database read) gives the session's own number.

**Reconnect.** whatsmeow does not retry a failed first connect, and after a drop it retries on its
own with a linear, uncapped delay. Here every connection ends in the same loop: the client is
stopped on a drop and reconnected on the seed's schedule (§12): exponential backoff with jitter,
2 s base, 60 s cap, 10 attempts, then ``failed`` (:class:`Backoff`, driven by tenacity). A
connection that stayed up for ``cap`` seconds starts a fresh series. States reported on the way:
``connecting`` per attempt, ``disconnected`` with the error and the next delay, ``qr`` while
waiting for a scan (a QR series that runs out without a scan counts as a failed attempt). Never
retried: ``logged_out`` (re-pairing needs a person: restart the session to get a QR), a stream
replaced by another client of the same device, ``client outdated``. A temporary ban waits until it
expires, then connects again.

**Events.** One handler per event type (neonize keeps only the last registration), each only
translating the protobuf event and handing it to the sink, wrapped in try/except + logging:
handlers run on Go's event thread, whose buffer holds 100 events before whatsmeow blocks.
The translations are pure module functions (``receipt_event``, ``incoming_event`` …) so they can be
tested on real ``neonize.proto.Neonize_pb2`` objects.

Remaining hazards: a ``stop()`` during a connect to a peer that never answers waits for Go's dial
timeout (~60 s) in the background; in-process mode keeps the Go panic hazard described above.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import itertools
import logging
import os
import pickle
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tenacity

from models.statuses import SessionStatus
from sessions_host.transports.base import (
    BannedError,
    Event,
    EventSink,
    Incoming,
    QRCode,
    Receipt,
    RecipientError,
    SendResult,
    SessionError,
    StateChanged,
    TransientSendError,
)
from sessions_host.transports.errors import AmbiguousSendError, to_send_error

log = logging.getLogger(__name__)

BOT_TAG_ENV = "NEONIZE_BOT_TAG"
DEFAULT_BOT_TAG = "off"

#: The ``detail`` of the state reported when another client took the device's stream over.
STREAM_REPLACED = "stream replaced: the session was opened elsewhere"
#: Seconds the first QR code of a connection is valid, and each later one (WhatsApp's rotation).
FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0
#: Extra wait after the last QR code expired before the attempt counts as failed.
QR_GRACE_SECONDS = 10.0

_USER_SERVERS = ("s.whatsapp.net", "c.us")

# Device store --------------------------------------------------------------------------------------


def schema_for(session_id: str) -> str:
    """The PostgreSQL schema holding one session's whatsmeow tables (a safe, unique identifier)."""
    slug = re.sub(r"[^a-z0-9_]", "_", session_id.lower())[:40]
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:8]
    return f"neonize_{slug}_{digest}"


def libpq_url(url: str, schema: str | None = None) -> str:
    """A database URL (SQLAlchemy or libpq form) as the Go driver (lib/pq) wants it: scheme
    ``postgres``, ``sslmode=prefer`` unless given (libpq's default; lib/pq's own is ``require``), and
    ``search_path`` set to the session's schema."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("sslmode", "prefer")
    if schema:
        query["search_path"] = schema
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


@dataclass(frozen=True)
class NeonizeStore:
    """Where one session's whatsmeow device store lives: a SQLite file, or a schema of a
    PostgreSQL database."""

    #: SQLite: the file path. PostgreSQL: the database URL (SQLAlchemy or libpq form).
    location: str
    #: PostgreSQL only: the session's schema.
    schema: str | None = None

    @classmethod
    def sqlite(cls, path: Path | str) -> NeonizeStore:
        return cls(str(path))

    @classmethod
    def postgres(cls, url: str, session_id: str) -> NeonizeStore:
        return cls(url, schema_for(session_id))

    @classmethod
    def for_session(cls, database: str, data_path: Path, session_id: str) -> NeonizeStore:
        """PostgreSQL when the project's database is PostgreSQL, else ``<data_path>/neonize/<id>.db``."""
        if database.startswith("postgres"):
            return cls.postgres(database, session_id)
        return cls.sqlite(data_path / "neonize" / f"{session_id}.db")

    @property
    def is_postgres(self) -> bool:
        return self.location.startswith("postgres")

    def describe(self) -> str:
        if not self.is_postgres:
            return self.location
        from wa_tasks.logs import mask_url

        return f"{mask_url(self.location)} (schema {self.schema})"

    def prepare(self) -> str:
        """Create the file (mode 0600) or the schema if missing; the name to give ``NewClient``."""
        if self.is_postgres:
            _ensure_schema(self.location, self.schema)
            return libpq_url(self.location, self.schema)
        path = Path(self.location)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        return str(path)


def _ensure_schema(url: str, schema: str | None) -> None:
    if not schema:
        return
    from sqlalchemy import text

    from models.db import create

    engine = create(re.sub(r"^postgres://", "postgresql://", url))
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


class StoreError(Exception):
    """The device store cannot be read."""


def stored_devices(name: str) -> list[Any]:
    """The devices (``Neonize_pb2.Device``) in a store; a database read that never touches a client."""
    from neonize.client import ClientFactory

    try:
        return list(ClientFactory.get_all_devices_from_db(name))
    except ValueError:
        # neonize parses Go's "error: …" answer as a device list and fails; fetch the text itself.
        detail = "unreadable answer"
        try:
            from neonize.client import func_callback_bytes2, gocode, log_whatsmeow

            detail = gocode.GetAllDevices(name.encode(), func_callback_bytes2(log_whatsmeow)).decode()
        except Exception:
            pass
        raise StoreError(f"cannot read the device store: {detail}") from None


# Reconnect schedule ----------------------------------------------------------------------------------


class ConnectAttemptFailed(Exception):
    """One connect attempt failed; retried on the :class:`Backoff` schedule."""


@dataclass(frozen=True)
class Backoff:
    """The reconnect schedule (seed §12): exponential from ``base`` seconds, capped at ``cap``, with
    jitter, ``attempts`` tries in all.

    The delay after failed attempt *n* is ``min(cap, base·2^(n-1))`` minus a random share of up to
    ``jitter`` of it. With ``jitter < 0.5`` the delays strictly grow until the cap (the lowest
    possible next delay, ``(1-jitter)·2d``, is above ``d``) and never exceed it.
    """

    base: float = 2.0
    cap: float = 60.0
    attempts: int = 10
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < self.base:
            raise ValueError(f"reconnect backoff needs 0 <= base <= cap (got base={self.base}, cap={self.cap})")
        if self.attempts < 1:
            raise ValueError(f"reconnect attempts must be at least 1 (got {self.attempts})")
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"reconnect jitter must be in [0, 0.5) (got {self.jitter})")

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after connect attempt ``failed_attempt`` (1-based) failed."""
        exponent = min(max(failed_attempt - 1, 0), 64)
        nominal = min(self.cap, self.base * 2.0**exponent)
        return nominal * (rng or random).uniform(1.0 - self.jitter, 1.0)

    def schedule(self, rng: random.Random | None = None) -> list[float]:
        """The waits between the attempts of one series (``attempts - 1`` of them)."""
        return [self.delay(n, rng) for n in range(1, self.attempts)]

    def retrying(
        self,
        *,
        stop_event: threading.Event,
        sleep: Callable[[float], None] = time.sleep,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
        rng: random.Random | None = None,
    ) -> tenacity.Retrying:
        """tenacity's loop for one series: retries :class:`ConnectAttemptFailed` on this schedule,
        stops after ``attempts`` or when ``stop_event`` is set, then re-raises the last failure."""
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts) | tenacity.stop_when_event_set(stop_event),
            wait=BackoffWait(self, rng),
            retry=tenacity.retry_if_exception_type(ConnectAttemptFailed),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


class BackoffWait(tenacity.wait.wait_base):
    """A tenacity wait strategy following :meth:`Backoff.delay`."""

    def __init__(self, backoff: Backoff, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.backoff.delay(retry_state.attempt_number, self.rng)


# Translating neonize events (pure) ---------------------------------------------------------------

_RECEIPT_KINDS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "read"}


def epoch_to_datetime(value: float) -> dt.datetime:
    """A protobuf timestamp as an aware UTC datetime. Unix seconds or milliseconds (neonize uses
    both: receipts and send responses in seconds, message infos in milliseconds) are told apart by
    size; 0 (unset) means now."""
    if not value or value <= 0:
        return dt.datetime.now(dt.UTC)
    seconds = value / 1000.0 if value > 1e11 else float(value)
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def enum_name(message: Any, field: str) -> str:
    """The name of an enum field's value (``LoggedOut.Reason`` → ``"LOGGED_OUT"``)."""
    value = getattr(message, field)
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    found = enum_type.values_by_number.get(value)
    return found.name if found is not None else str(value)


def phone_of(jid: Any) -> str | None:
    """The phone number (digits) of a user JID, or None for a LID, group, or empty JID."""
    if jid is None or jid.Server not in _USER_SERVERS:
        return None
    digits = re.sub(r"\D", "", jid.User)
    return digits or None


def qr_code(data: bytes | str, first: bool) -> QRCode:
    """The QR callback's payload as a ``QRCode`` (the first code of a connection lives longer)."""
    code = data.decode() if isinstance(data, bytes) else data
    return QRCode(code=code, expires_in=FIRST_QR_SECONDS if first else NEXT_QR_SECONDS)


def logged_out_state(event: Any) -> StateChanged:
    """``LoggedOutEv`` → ``logged_out`` with the reason's name."""
    when = ", while connecting" if event.OnConnect else ""
    return StateChanged(
        status=SessionStatus.LOGGED_OUT,
        detail=f"logged out ({enum_name(event, 'Reason')}{when}): link the device again",
    )


def temporary_ban_state(event: Any, now: dt.datetime | None = None) -> StateChanged:
    """``TemporaryBanEv`` → ``banned`` until ``now + Expire`` seconds."""
    expire = int(event.Expire)
    now = now or dt.datetime.now(dt.UTC)
    until = now + dt.timedelta(seconds=expire) if expire > 0 else None
    return StateChanged(
        status=SessionStatus.BANNED,
        detail=f"temporary ban {enum_name(event, 'Code')} (code {int(event.Code)}), expires in {expire} s",
        until=until,
    )


def receipt_event(event: Any) -> Receipt | None:
    """``ReceiptEv`` → one ``Receipt`` for all its message ids; None for receipts that say nothing
    about delivery to the recipient (SENDER, RETRY, READ_SELF: one of our own devices read a
    message we *received*, …)."""
    kind = _RECEIPT_KINDS.get(enum_name(event, "Type"))
    ids = tuple(i for i in event.MessageIDs if i)
    if kind is None or not ids:
        return None
    return Receipt(wa_message_ids=ids, kind=kind, at=epoch_to_datetime(event.Timestamp))


def incoming_event(event: Any) -> Incoming | None:
    """``MessageEv`` → ``Incoming`` for a 1:1 message from someone else; None for our own messages,
    groups, status broadcasts, newsletters, protocol messages without content, and senders whose
    phone number is unknown."""
    from neonize.utils.message import extract_text

    info = event.Info
    source = info.MessageSource
    if source.IsFromMe or source.IsGroup or source.Chat.Server in ("g.us", "broadcast", "newsletter"):
        return None
    if source.Sender.Server == "lid":
        sender = phone_of(source.SenderAlt)
    else:
        sender = phone_of(source.Sender) or phone_of(source.SenderAlt)
    if not sender:
        return None
    text = extract_text(event.Message)
    if not text and not info.MediaType:
        return None
    return Incoming(sender=sender, text=text, wa_message_id=info.ID, at=epoch_to_datetime(info.Timestamp))


def _to_jid(jid: str) -> Any:
    from neonize.utils.jid import build_jid

    user, _, server = jid.partition("@")
    user = re.sub(r"\D", "", user)
    if not user:
        raise RecipientError(f"no phone number in recipient {jid!r}")
    return build_jid(user, server or "s.whatsapp.net")


def _send_result(response: Any) -> SendResult:
    if not response.ID:
        raise TransientSendError("WhatsApp acknowledged the send without a message id")
    return SendResult(wa_message_id=response.ID, sent_at=epoch_to_datetime(response.Timestamp))


def _load_neonize(bot_tag: str | None = None) -> None:
    """Import neonize with ``NEONIZE_BOT_TAG`` decided first (the Go runtime reads it at load)."""
    loaded = "neonize._binder" in sys.modules
    if bot_tag is not None:
        os.environ[BOT_TAG_ENV] = bot_tag
    elif BOT_TAG_ENV not in os.environ:
        if loaded:
            log.warning("neonize was imported before %s was decided: its default (tag on) may apply", BOT_TAG_ENV)
        os.environ[BOT_TAG_ENV] = DEFAULT_BOT_TAG
    import neonize.client  # noqa: F401


# One client, in this process ---------------------------------------------------------------------


class _Next(enum.Enum):
    STOP = "stop"  #: stopped, or a state that needs a person
    RESTART = "restart"  #: a stable connection dropped: a fresh series of attempts
    BANNED = "banned"  #: wait for the ban to end, then a fresh series


class NeonizeSession:
    """One neonize client in the current process and its reconnect loop.

    ``NeonizeTransport`` uses it directly (``isolate=False``) or inside its child process. Every Go
    lifecycle call (connect, stop) happens on the supervisor thread (and the connect thread it
    starts), one at a time, as the Go side's unlocked maps require.
    """

    def __init__(
        self,
        session_id: str,
        store: NeonizeStore,
        sink: EventSink,
        backoff: Backoff | None = None,
        *,
        stable_after: float | None = None,
        bot_tag: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.store = store
        self.backoff = backoff or Backoff()
        #: A connection up this long before it drops starts a fresh series of attempts.
        self.stable_after = self.backoff.cap if stable_after is None else stable_after
        self._sink = sink
        self._bot_tag = bot_tag
        self.client: Any = None
        self.store_name: str | None = None
        self.phone_number: str | None = None
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._qr_seen = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._last_state: tuple[str, str | None, str | None] | None = None
        self._status: str = SessionStatus.DISCONNECTED
        self._attempt_no = 0
        # Signals from the handlers to the supervisor (guarded by _cond).
        self._terminal: str | None = None
        self._ban_deadline: float | None = None
        self._ban_until: dt.datetime | None = None
        self._dropped: str | None = None
        self._connected_at: float | None = None
        self._phone_checked = False
        self._qr_count = 0
        self._qr_deadline: float | None = None
        self._connect_running = False
        self._connect_error: str | None = None

    # Lifecycle -------------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status

    @property
    def connected(self) -> bool:
        return self._status == SessionStatus.CONNECTED

    def open(self) -> Any:
        """Load neonize, prepare the store, create the client and register the handlers (no
        network). Called by the supervisor; tests call it to drive the handlers."""
        if self.client is not None:
            return self.client
        _load_neonize(self._bot_tag)
        from neonize.client import NewClient

        name = self.store.prepare()
        devices = stored_devices(name)
        if devices:
            self.phone_number = phone_of(devices[0].JID)
        client = NewClient(name=name, uuid=self.session_id)
        self._register(client)
        self.store_name = name
        self.client = client
        log.info(
            "session %s: neonize client ready (store %s, %s)",
            self.session_id,
            self.store.describe(),
            f"device {self.phone_number}" if self.phone_number else "no device yet: pairing needed",
            extra={"session_id": self.session_id},
        )
        return client

    def start(self) -> None:
        """Connect in the background (returns at once); states arrive through the sink."""
        if self._supervisor is not None:
            return
        self._supervisor = threading.Thread(target=self._supervise, name=f"neonize-{self.session_id}", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Close the connection (the device stays linked)."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            if self._supervisor.is_alive():
                log.warning(
                    "session %s: neonize did not stop within %.0fs; leaving it to finish in the background",
                    self.session_id,
                    timeout,
                    extra={"session_id": self.session_id},
                )
        elif self.client is not None:
            self._stop_client()
        self._state(SessionStatus.DISCONNECTED, "stopped")

    # Calls -------------------------------------------------------------------------------------------

    def send_text(self, jid: str, text: str) -> SendResult:
        client = self._live_client()
        to = _to_jid(jid)
        return _send_result(self._go(lambda: client.send_message(to, text)))

    def send_media(
        self, jid: str, data: bytes, mimetype: str, caption: str = "", filename: str | None = None
    ) -> SendResult:
        client = self._live_client()
        to = _to_jid(jid)
        if mimetype.startswith("image/"):
            response = self._go(lambda: client.send_image(to, data, caption=caption or None))
        else:
            name = filename or "document"
            response = self._go(
                lambda: client.send_document(
                    to, data, caption=caption or None, title=name, filename=name, mimetype=mimetype
                )
            )
        return _send_result(response)

    def is_on_whatsapp(self, numbers: Sequence[str]) -> dict[str, bool]:
        """Which of these numbers (digits, any formatting) have WhatsApp, in one query. Numbers the
        server did not answer for are left out."""
        client = self._live_client()
        digits = [re.sub(r"\D", "", n) for n in numbers]
        queries = [f"+{d}" for d in digits if d]
        if not queries:
            return {}
        answers = self._go(lambda: client.is_on_whatsapp(*queries))
        return {re.sub(r"\D", "", a.Query): bool(a.IsIn) for a in answers}

    def send_typing(self, jid: str, typing: bool = True) -> None:
        """Show (or clear) "typing…" in the chat with ``jid``."""
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia

        client = self._live_client()
        state = ChatPresence.CHAT_PRESENCE_COMPOSING if typing else ChatPresence.CHAT_PRESENCE_PAUSED
        to = _to_jid(jid)
        self._go(lambda: client.send_chat_presence(to, state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT))

    def mark_read(self, wa_message_id: str, sender: str) -> None:
        """Send a read receipt for a message the session received from ``sender``."""
        from neonize.utils.enum import ReceiptType

        client = self._live_client()
        jid = _to_jid(sender)
        self._go(lambda: client.mark_read(wa_message_id, chat=jid, sender=jid, receipt=ReceiptType.READ))

    def pair_phone(self, phone: str) -> str:
        """An 8-character code to type on the phone (Linked devices → Link with phone number).
        Valid only while the connection shows QR codes, i.e. after the first QR callback."""
        client = self._live_client()
        if not self._qr_seen.is_set():
            raise SessionError("pairing by phone number needs a connection showing QR codes: wait for the first QR")
        digits = re.sub(r"\D", "", phone)
        return str(self._go(lambda: client.PairPhone(digits, True)))

    def logout(self) -> None:
        """Unlink the device from the phone (needs the connection) and forget it."""
        client = self._live_client()
        self._go(client.logout)
        self.phone_number = None
        self._signal(terminal=SessionStatus.LOGGED_OUT)
        self._state(SessionStatus.LOGGED_OUT, "logged out by the operator")

    def _live_client(self) -> Any:
        if self.client is None:
            raise SessionError("client is nil: the neonize transport is not started")
        if self._ban_active():
            until = self._ban_until
            raise BannedError(f"temporarily banned until {until.isoformat() if until else '?'}", until)
        return self.client

    @staticmethod
    def _go(call: Callable[[], Any]) -> Any:
        from neonize.exc import NeonizeError

        try:
            return call()
        except NeonizeError as exc:
            raise to_send_error(str(exc) or type(exc).__name__) from exc

    # Handlers (Go's event thread: translate, hand over, never block) --------------------------------

    def _register(self, client: Any) -> None:
        from neonize.events import (
            ClientOutdatedEv,
            ConnectedEv,
            ConnectFailureEv,
            DisconnectedEv,
            KeepAliveTimeoutEv,
            LoggedOutEv,
            MessageEv,
            PairStatusEv,
            ReceiptEv,
            StreamErrorEv,
            StreamReplacedEv,
            TemporaryBanEv,
        )

        client.event.qr(self._guard("qr", self._on_qr))
        handlers: list[tuple[Any, Callable[[Any], None]]] = [
            (ConnectedEv, self._on_connected),
            (DisconnectedEv, self._on_disconnected),
            (LoggedOutEv, self._on_logged_out),
            (TemporaryBanEv, self._on_temporary_ban),
            (StreamReplacedEv, self._on_stream_replaced),
            (ClientOutdatedEv, self._on_client_outdated),
            (ConnectFailureEv, self._on_connect_failure),
            (PairStatusEv, self._on_pair_status),
            (ReceiptEv, self._on_receipt),
            (MessageEv, self._on_message),
            (KeepAliveTimeoutEv, self._on_keepalive_timeout),
            (StreamErrorEv, self._on_stream_error),
        ]
        for event_type, handler in handlers:
            client.event(event_type)(self._guard(event_type.__name__, handler))

    def _guard(self, name: str, handler: Callable[[Any], None]) -> Callable[[Any, Any], None]:
        # A plain function: neonize keeps it strongly (a bound method would be a weak reference).
        def run(_client: Any, event: Any) -> None:
            try:
                handler(event)
            except Exception:
                log.exception(
                    "session %s: neonize %s handler failed",
                    self.session_id,
                    name,
                    extra={"session_id": self.session_id},
                )

        return run

    def _on_qr(self, data: bytes) -> None:
        with self._cond:
            first = self._qr_count == 0
            self._qr_count += 1
        code = qr_code(data, first)
        with self._cond:
            self._qr_deadline = time.monotonic() + code.expires_in + QR_GRACE_SECONDS
        self._qr_seen.set()
        self._state(SessionStatus.QR)
        self._emit(code)

    def _on_connected(self, _event: Any) -> None:
        self._state(SessionStatus.CONNECTED, phone_number=self.phone_number)
        with self._cond:
            self._connected_at = time.monotonic()
            self._qr_deadline = None
            self._cond.notify_all()

    def _on_disconnected(self, _event: Any) -> None:
        if self._stopping.is_set():
            return
        self._state(SessionStatus.DISCONNECTED, "connection lost", progress=True)
        self._signal(dropped="connection lost")

    def _on_logged_out(self, event: Any) -> None:
        state = logged_out_state(event)
        self.phone_number = None
        self._signal(terminal=SessionStatus.LOGGED_OUT)
        self._state(state.status, state.detail)

    def _on_temporary_ban(self, event: Any) -> None:
        state = temporary_ban_state(event)
        self._ban_until = state.until
        if state.until is None:
            self._signal(terminal=SessionStatus.BANNED)
        else:
            self._signal(ban_seconds=float(event.Expire))
        self._state(state.status, state.detail, until=state.until)

    def _on_stream_replaced(self, _event: Any) -> None:
        self._signal(terminal=SessionStatus.DISCONNECTED)
        self._state(SessionStatus.DISCONNECTED, STREAM_REPLACED)

    def _on_client_outdated(self, _event: Any) -> None:
        self._signal(terminal=SessionStatus.FAILED)
        self._state(SessionStatus.FAILED, "WhatsApp rejects this client version: upgrade neonize")

    def _on_connect_failure(self, event: Any) -> None:
        detail = f"connect failure {enum_name(event, 'Reason')}: {event.Message}".rstrip(": ")
        self._state(SessionStatus.DISCONNECTED, detail, progress=True)
        self._signal(dropped=detail)

    def _on_pair_status(self, event: Any) -> None:
        status = enum_name(event, "Status")
        if status == "SUCCESS":
            with self._cond:
                self._qr_deadline = None
            log.info("session %s: paired with %s", self.session_id, phone_of(event.ID), extra=self._extra)
        else:
            log.warning("session %s: pairing failed: %s", self.session_id, event.Error, extra=self._extra)

    def _on_receipt(self, event: Any) -> None:
        receipt = receipt_event(event)
        if receipt is not None:
            self._emit(receipt)

    def _on_message(self, event: Any) -> None:
        incoming = incoming_event(event)
        if incoming is not None:
            self._emit(incoming)

    def _on_keepalive_timeout(self, event: Any) -> None:
        log.warning("session %s: keepalive timeout (%d errors)", self.session_id, event.ErrorCount, extra=self._extra)

    def _on_stream_error(self, event: Any) -> None:
        log.warning("session %s: stream error %s", self.session_id, getattr(event, "Code", "?"), extra=self._extra)

    @property
    def _extra(self) -> dict[str, str]:
        return {"session_id": self.session_id}

    # Reporting ---------------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._sink(event)
        except Exception:
            log.exception("session %s: event sink failed", self.session_id, extra=self._extra)

    def _state(
        self,
        status: str,
        detail: str | None = None,
        *,
        phone_number: str | None = None,
        until: dt.datetime | None = None,
        progress: bool = False,
    ) -> None:
        """Report a state, once: a repeat of the last (status, detail, number) is dropped. A
        ``progress`` state (connecting, a lost connection, a failed attempt) is dropped once the
        session is settled (stopping, banned, or in a state that needs a person), so that it never
        overwrites the state that settled it."""
        phone_number = phone_number or (self.phone_number if status == SessionStatus.CONNECTED else None)
        key = (status, detail, phone_number)
        with self._cond:
            if progress and (self._stopping.is_set() or self._terminal or self._ban_active()):
                return
            if key == self._last_state:
                return
            self._last_state = key
            self._status = status
        self._emit(StateChanged(status=status, detail=detail, phone_number=phone_number, until=until))

    def _signal(
        self, *, terminal: str | None = None, dropped: str | None = None, ban_seconds: float | None = None
    ) -> None:
        with self._cond:
            if terminal is not None:
                self._terminal = terminal
            if dropped is not None:
                self._dropped = dropped
            if ban_seconds is not None:
                self._ban_deadline = time.monotonic() + ban_seconds
            self._cond.notify_all()

    # Supervisor --------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self._stopping.is_set():
                step = self._run_series()
                if step is _Next.RESTART:
                    continue
                if step is _Next.BANNED and self._wait_for_ban_end():
                    continue
                break
        except Exception as exc:
            log.exception("session %s: neonize supervisor failed", self.session_id, extra=self._extra)
            self._state(SessionStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if self.client is not None:
                self._stop_client()

    def _run_series(self) -> _Next:
        self._attempt_no = 0
        retrying = self.backoff.retrying(stop_event=self._stopping, sleep=self._sleep, before_sleep=self._before_sleep)
        try:
            step: _Next = retrying(self._attempt)
            return step
        except ConnectAttemptFailed as exc:
            if self._stopping.is_set() or self._terminal:
                return _Next.STOP
            if self._ban_active():
                return _Next.BANNED
            self._state(
                SessionStatus.FAILED,
                f"gave up after {self._attempt_no} connect attempts; last error: {exc}",
                progress=True,
            )
            return _Next.STOP

    def _attempt(self) -> _Next:
        if self._stopping.is_set() or self._terminal:
            return _Next.STOP
        if self._ban_active():
            return _Next.BANNED
        self._attempt_no += 1
        self._state(SessionStatus.CONNECTING, progress=True)
        if self.client is None:
            try:
                self.open()
            except (ImportError, OSError) as exc:
                self._state(SessionStatus.FAILED, f"neonize cannot be loaded: {exc}")
                self._signal(terminal=SessionStatus.FAILED)
                return _Next.STOP
            except Exception as exc:
                raise ConnectAttemptFailed(f"{type(exc).__name__}: {exc}") from exc
        with self._cond:
            self._dropped = None
            self._connected_at = None
            self._phone_checked = False
            self._qr_count = 0
            self._qr_deadline = None
            self._connect_running = True
            self._connect_error = None
        thread = threading.Thread(target=self._run_connect, name=f"neonize-{self.session_id}-connect", daemon=True)
        thread.start()
        while True:
            with self._cond:
                self._cond.wait_for(self._needs_attention, timeout=1.0)
                running, error, dropped = self._connect_running, self._connect_error, self._dropped
                connected_at, qr_deadline = self._connected_at, self._qr_deadline
                check_phone = connected_at is not None and not self._phone_checked
                self._phone_checked = self._phone_checked or check_phone
            if self._stopping.is_set() or self._terminal:
                self._halt(thread)
                return _Next.STOP
            if self._ban_active():
                self._halt(thread)
                return _Next.BANNED
            if not running:
                raise ConnectAttemptFailed(error or "the connection closed")
            if check_phone:
                self._resolve_phone()
            if dropped:
                self._halt(thread)
                if connected_at is not None and time.monotonic() - connected_at >= self.stable_after:
                    return _Next.RESTART
                raise ConnectAttemptFailed(dropped)
            if qr_deadline is not None and time.monotonic() > qr_deadline:
                self._halt(thread)
                raise ConnectAttemptFailed("no QR code was scanned in time")

    def _needs_attention(self) -> bool:
        return bool(
            self._stopping.is_set()
            or self._terminal
            or self._ban_active()
            or not self._connect_running
            or self._dropped
            or (self._connected_at is not None and not self._phone_checked)
            or (self._qr_deadline is not None and time.monotonic() > self._qr_deadline)
        )

    def _run_connect(self) -> None:
        error: str | None = None
        try:
            self.client.connect()
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        with self._cond:
            self._connect_running = False
            self._connect_error = error
            self._cond.notify_all()

    def _halt(self, thread: threading.Thread) -> None:
        """Stop the client and wait until its connect() returned (never two at once)."""
        self._stop_client()
        waited = 0.0
        while thread.is_alive():
            thread.join(0.5)
            waited += 0.5
            if waited == 10.0:
                log.warning("session %s: waiting for neonize's connect to return", self.session_id, extra=self._extra)

    def _stop_client(self) -> None:
        try:
            self.client.stop()
        except Exception:
            log.exception("session %s: neonize stop failed", self.session_id, extra=self._extra)
        # neonize also stops the client by its uuid when the Python object is collected; in the
        # host process that would stop a newer client of the same session. We stop it ourselves.
        finalizer = getattr(self.client, "_stop_finalizer", None)
        if finalizer is not None:
            finalizer.detach()

    def _resolve_phone(self) -> None:
        """After a connect, read the device's number from the store (new after a pairing)."""
        if self.store_name is None:
            return
        try:
            devices = stored_devices(self.store_name)
        except StoreError as exc:
            log.warning("session %s: %s", self.session_id, exc, extra=self._extra)
            return
        number = phone_of(devices[0].JID) if devices else None
        if number and number != self.phone_number:
            self.phone_number = number
            if self.connected:
                self._state(SessionStatus.CONNECTED, phone_number=number, progress=True)

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._stopping.is_set() or bool(self._terminal) or self._ban_active(), timeout=seconds
            )

    def _before_sleep(self, retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        delay = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
        self._state(
            SessionStatus.DISCONNECTED,
            f"connect attempt {retry_state.attempt_number} of {self.backoff.attempts} failed: {error}; "
            f"next attempt in {delay:.1f} s",
            progress=True,
        )

    def _ban_active(self) -> bool:
        return self._ban_deadline is not None and time.monotonic() < self._ban_deadline

    def _wait_for_ban_end(self) -> bool:
        """Wait until the ban ends; False when stopped (or a person is needed) meanwhile."""
        with self._cond:
            while not (self._stopping.is_set() or self._terminal):
                deadline = self._ban_deadline
                if deadline is None or time.monotonic() >= deadline:
                    self._ban_deadline = None
                    return True
                self._cond.wait(timeout=deadline - time.monotonic())
        return False


# The child process -------------------------------------------------------------------------------

_SEND_CALLS = frozenset({"send_text", "send_media"})
#: What the child runs (the session id in its arguments only names it in ``ps``).
_CHILD_BOOT = "import sys; from sessions_host.transports.neonize import child_entry; child_entry(int(sys.argv[1]))"
_CALLS = _SEND_CALLS | {"is_on_whatsapp", "send_typing", "pair_phone", "logout"}


@dataclass(frozen=True)
class _ChildConfig:
    session_id: str
    store: NeonizeStore
    backoff: Backoff
    bot_tag: str
    log_level: int


class _PipeLogHandler(logging.Handler):
    """In the child: log records go to the parent, which logs them with its own configuration."""

    def __init__(self, out: queue.SimpleQueue[Any]) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.out.put(("log", record.name, record.levelno, text))
        except Exception:
            self.handleError(record)


def _portable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def child_entry(fd: int) -> None:
    """Entry point of a session's child process (``python -c``): the parent's end of the socket pair
    is ``fd``; the first message is the :class:`_ChildConfig`."""
    conn = Connection(fd)
    _child_main(conn, conn.recv())


def _child_main(conn: Connection, config: _ChildConfig) -> None:
    """One neonize client, driven through ``conn``."""
    # The parent decides when to stop (it finishes sends in flight first); Ctrl-C and SIGTERM to
    # the process group must not cut the child off before that. A dead parent closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ[BOT_TAG_ENV] = config.bot_tag  # before neonize loads
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_PipeLogHandler(out))  # installed first, so neonize's basicConfig does nothing
    root.setLevel(config.log_level)

    def write() -> None:
        while True:
            item = out.get()
            if item is None:
                return
            try:
                conn.send(item)
            except (OSError, EOFError):
                continue  # the parent is gone; the main loop notices and ends
            except Exception as exc:  # unpicklable
                if item[0] == "reply":
                    with contextlib.suppress(Exception):
                        conn.send(("reply", item[1], False, RuntimeError(f"unpicklable result: {exc}")))

    writer = threading.Thread(target=write, name="to-parent", daemon=True)
    writer.start()
    session = NeonizeSession(
        config.session_id, config.store, lambda event: out.put(("event", event)), config.backoff, bot_tag=config.bot_tag
    )
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="neonize-call")

    def serve(req_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method not in _CALLS:
                raise ValueError(f"unknown call {method!r}")
            out.put(("reply", req_id, True, getattr(session, method)(*args)))
        except BaseException as exc:
            out.put(("reply", req_id, False, _portable(exc)))

    try:
        session.start()
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone
            if message[0] == "stop":
                break
            if message[0] == "call":
                pool.submit(serve, message[1], message[2], tuple(message[3]))
    finally:
        session.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        out.put(None)
        writer.join(timeout=5)
        conn.close()
        # neonize's connect() runs Go on a non-daemon thread that may outlive us: leave now.
        os._exit(0)


# The transport ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeonizeOptions:
    """A neonize session's ``transport_options``."""

    #: Run the client in a child process of its own (see the module docstring).
    isolate: bool = True
    reconnect_base: float = 2.0
    reconnect_cap: float = 60.0
    reconnect_attempts: int = 10

    @classmethod
    def build(cls, overrides: dict[str, Any] | None) -> NeonizeOptions:
        overrides = dict(overrides or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(
                f"unknown neonize transport option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            default = getattr(cls, key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"neonize option {key} must be true or false, not {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"neonize option {key} must be a whole number, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"neonize option {key} must be a number, not {value!r}")
            values[key] = value
        options = cls(**values)
        options.backoff()  # validates the numbers
        return options

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

    def send_text(self, jid: str, text: str) -> SendResult:
        result: SendResult = self._call("send_text", jid, text)
        return result

    def send_media(
        self, jid: str, data: bytes, mimetype: str, caption: str = "", filename: str | None = None
    ) -> SendResult:
        result: SendResult = self._call("send_media", jid, data, mimetype, caption, filename)
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
            if method in _SEND_CALLS:
                raise AmbiguousSendError(f"{detail}: the message may have been sent") from None
            raise TransientSendError(detail) from None
        if ok:
            return payload
        raise payload

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Connection]:
        config = _ChildConfig(
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
                [sys.executable, "-c", _CHILD_BOOT, str(theirs.fileno()), self.session_id],
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
            if method in _SEND_CALLS:
                error = AmbiguousSendError(f"the neonize process {exit_text} during the send: it may have been sent")
            else:
                error = SessionError(f"the neonize process {exit_text}")
            future.set_result((False, error))

    @property
    def pid(self) -> int | None:
        """The child process's id (isolated mode, while it runs)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None


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
