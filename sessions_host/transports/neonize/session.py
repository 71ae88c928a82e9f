"""One neonize client in the current process: connect, events, sends, and its reconnect loop."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import tenacity

from models.statuses import SessionStatus
from sessions_host.transports.base import (
    BannedError,
    Event,
    EventSink,
    SendResult,
    SessionError,
    StateChanged,
)
from sessions_host.transports.errors import to_send_error
from sessions_host.transports.neonize.reconnect import Backoff, ConnectAttemptFailed
from sessions_host.transports.neonize.store import NeonizeStore, StoreError, stored_devices
from sessions_host.transports.neonize.translate import (
    STREAM_REPLACED,
    enum_name,
    incoming_event,
    load_neonize,
    logged_out_state,
    phone_of,
    qr_code,
    receipt_event,
    send_result,
    temporary_ban_state,
    to_jid,
)

if TYPE_CHECKING:
    # Types only: importing neonize loads its Go library (see load_neonize).
    from google.protobuf.message import Message
    from neonize.client import NewClient
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
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage

log = logging.getLogger(__name__)

_T = TypeVar("_T")
#: A neonize event (a protobuf message).
_E = TypeVar("_E", bound="Message")
#: What a handler receives: an event, or the QR callback's payload.
_A = TypeVar("_A")


def text_message(text: str) -> WAMessage:
    """A plain text message, as neonize's ``send_message`` builds one for text without mentions or
    a link preview."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    return Message(conversation=text)


def with_secret(message: WAMessage, secret: str | None) -> WAMessage:
    """``message`` carrying ``secret`` (hex of 32 bytes) as its ``messageSecret``, as neonize's
    ``add_msg_secret`` gives it a random one. whatsmeow's ``SendMessage`` stores the secret with the
    message id it generates (``whatsmeow_message_secrets``) before the message leaves, so the id of
    a send its host died during can be found from the secret (``sent_secrets``)."""
    if secret is not None:
        message.messageContextInfo.messageSecret = bytes.fromhex(secret)
    return message


#: Extra wait after the last QR code expired before the attempt counts as failed.
QR_GRACE_SECONDS = 10.0

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
        self.client: NewClient | None = None
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

    def open(self) -> NewClient:
        """Load neonize, prepare the store, create the client and register the handlers (no
        network). Called by the supervisor; tests call it to drive the handlers."""
        if self.client is not None:
            return self.client
        load_neonize(self._bot_tag)
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

    def send_text(self, jid: str, text: str, secret: str | None = None) -> SendResult:
        """``secret``: hex of the ``messageSecret`` the message carries (see ``with_secret``)."""
        client = self._live_client()
        to = to_jid(jid)
        if secret is None:
            return send_result(self._go(lambda: client.send_message(to, text)))
        message = with_secret(text_message(text), secret)
        return send_result(self._go(lambda: client.send_message(to, message)))

    def send_media(
        self,
        jid: str,
        data: bytes,
        mimetype: str,
        caption: str = "",
        filename: str | None = None,
        secret: str | None = None,
    ) -> SendResult:
        client = self._live_client()
        to = to_jid(jid)

        def build() -> WAMessage:  # what send_image / send_document build (the upload included)
            if mimetype.startswith("image/"):
                return client.build_image_message(data, caption or None)
            name = filename or "document"
            return client.build_document_message(data, caption or None, title=name, filename=name, mimetype=mimetype)

        return send_result(self._go(lambda: client.send_message(to, with_secret(build(), secret))))

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
        to = to_jid(jid)
        self._go(lambda: client.send_chat_presence(to, state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT))

    def mark_read(self, wa_message_id: str, sender: str) -> None:
        """Send a read receipt for a message the session received from ``sender``."""
        from neonize.utils.enum import ReceiptType

        client = self._live_client()
        jid = to_jid(sender)
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

    def _live_client(self) -> NewClient:
        if self.client is None:
            raise SessionError("client is nil: the neonize transport is not started")
        if self._ban_active():
            until = self._ban_until
            raise BannedError(f"temporarily banned until {until.isoformat() if until else '?'}", until)
        return self.client

    @staticmethod
    def _go(call: Callable[[], _T]) -> _T:
        from neonize.exc import NeonizeError

        try:
            return call()
        except NeonizeError as exc:
            raise to_send_error(str(exc) or type(exc).__name__) from exc

    # Handlers (Go's event thread: translate, hand over, never block) --------------------------------

    def _register(self, client: NewClient) -> None:
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
        # One call per event type, so that each handler's parameter is checked against its event.
        self._handle(client, ConnectedEv, self._on_connected)
        self._handle(client, DisconnectedEv, self._on_disconnected)
        self._handle(client, LoggedOutEv, self._on_logged_out)
        self._handle(client, TemporaryBanEv, self._on_temporary_ban)
        self._handle(client, StreamReplacedEv, self._on_stream_replaced)
        self._handle(client, ClientOutdatedEv, self._on_client_outdated)
        self._handle(client, ConnectFailureEv, self._on_connect_failure)
        self._handle(client, PairStatusEv, self._on_pair_status)
        self._handle(client, ReceiptEv, self._on_receipt)
        self._handle(client, MessageEv, self._on_message)
        self._handle(client, KeepAliveTimeoutEv, self._on_keepalive_timeout)
        self._handle(client, StreamErrorEv, self._on_stream_error)

    def _handle(self, client: NewClient, event_type: type[_E], handler: Callable[[_E], None]) -> None:
        client.event(event_type)(self._guard(event_type.__name__, handler))

    def _guard(self, name: str, handler: Callable[[_A], None]) -> Callable[[NewClient, _A], None]:
        # A plain function: neonize keeps it strongly (a bound method would be a weak reference).
        def run(_client: NewClient, event: _A) -> None:
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

    def _on_connected(self, _event: ConnectedEv) -> None:
        self._state(SessionStatus.CONNECTED, phone_number=self.phone_number)
        with self._cond:
            self._connected_at = time.monotonic()
            self._qr_deadline = None
            self._cond.notify_all()

    def _on_disconnected(self, _event: DisconnectedEv) -> None:
        if self._stopping.is_set():
            return
        self._state(SessionStatus.DISCONNECTED, "connection lost", progress=True)
        self._signal(dropped="connection lost")

    def _on_logged_out(self, event: LoggedOutEv) -> None:
        state = logged_out_state(event)
        self.phone_number = None
        self._signal(terminal=SessionStatus.LOGGED_OUT)
        self._state(state.status, state.detail)

    def _on_temporary_ban(self, event: TemporaryBanEv) -> None:
        state = temporary_ban_state(event)
        self._ban_until = state.until
        if state.until is None:
            self._signal(terminal=SessionStatus.BANNED)
        else:
            self._signal(ban_seconds=float(event.Expire))
        self._state(state.status, state.detail, until=state.until)

    def _on_stream_replaced(self, _event: StreamReplacedEv) -> None:
        self._signal(terminal=SessionStatus.DISCONNECTED)
        self._state(SessionStatus.DISCONNECTED, STREAM_REPLACED)

    def _on_client_outdated(self, _event: ClientOutdatedEv) -> None:
        self._signal(terminal=SessionStatus.FAILED)
        self._state(SessionStatus.FAILED, "WhatsApp rejects this client version: upgrade neonize")

    def _on_connect_failure(self, event: ConnectFailureEv) -> None:
        detail = f"connect failure {enum_name(event, 'Reason')}: {event.Message}".rstrip(": ")
        self._state(SessionStatus.DISCONNECTED, detail, progress=True)
        self._signal(dropped=detail)

    def _on_pair_status(self, event: PairStatusEv) -> None:
        status = enum_name(event, "Status")
        if status == "SUCCESS":
            with self._cond:
                self._qr_deadline = None
            log.info("session %s: paired with %s", self.session_id, phone_of(event.ID), extra=self._extra)
        else:
            log.warning("session %s: pairing failed: %s", self.session_id, event.Error, extra=self._extra)

    def _on_receipt(self, event: ReceiptEv) -> None:
        receipt = receipt_event(event)
        if receipt is not None:
            self._emit(receipt)

    def _on_message(self, event: MessageEv) -> None:
        incoming = incoming_event(event)
        if incoming is not None:
            self._emit(incoming)

    def _on_keepalive_timeout(self, event: KeepAliveTimeoutEv) -> None:
        log.warning("session %s: keepalive timeout (%d errors)", self.session_id, event.ErrorCount, extra=self._extra)

    def _on_stream_error(self, event: StreamErrorEv) -> None:
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
        try:
            client = self.open()  # the existing client after the first attempt
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
        thread = threading.Thread(
            target=self._run_connect, args=(client,), name=f"neonize-{self.session_id}-connect", daemon=True
        )
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

    def _run_connect(self, client: NewClient) -> None:
        error: str | None = None
        try:
            client.connect()
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
        client = self.client
        if client is None:
            return
        try:
            client.stop()
        except Exception:
            log.exception("session %s: neonize stop failed", self.session_id, extra=self._extra)
        # neonize also stops the client by its uuid when the Python object is collected; in the
        # host process that would stop a newer client of the same session. We stop it ourselves.
        client._stop_finalizer.detach()

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
