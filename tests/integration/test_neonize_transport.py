"""The neonize transport, offline: a real neonize client with a temporary device store.

WhatsApp cannot be reached from here, so every connect fails fast with a dial error: the tests
check the backoff, the states on the way to ``failed``, the child-process isolation, and the event
handlers fed with real ``neonize.proto.Neonize_pb2`` events (through neonize's own dispatch where it
lets us, and through the pure translation functions).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import importlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from models.statuses import SessionStatus
from sessions_host.transports.base import BannedError, Event, Incoming, QRCode, Receipt, SessionError, StateChanged
from sessions_host.transports.errors import AmbiguousSendError

IN_CI = os.environ.get("CI", "").lower() == "true"
os.environ.setdefault("NEONIZE_BOT_TAG", "off")  # before neonize loads, as the transport does
if IN_CI:
    importlib.import_module("neonize")  # a test dependency: missing in CI is a failure
else:
    pytest.importorskip("neonize", reason="neonize not installed (pip install 'wa-tasks[test]')")

from neonize.events import EVENT_TO_INT  # noqa: E402
from neonize.proto import Neonize_pb2 as pb  # noqa: E402
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage  # noqa: E402
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WAMessage  # noqa: E402

from sessions_host import transports  # noqa: E402
from sessions_host.transports.neonize import (  # noqa: E402
    STREAM_REPLACED,
    NeonizeSession,
    NeonizeStore,
    NeonizeTransport,
    epoch_to_datetime,
    incoming_event,
    libpq_url,
    logged_out_state,
    qr_code,
    receipt_event,
    schema_for,
    stored_devices,
    temporary_ban_state,
)
from sessions_host.transports.neonize.translate import enum_name  # noqa: E402
from wa_tasks.settings import Settings  # noqa: E402

pytestmark = pytest.mark.integration

CUSTOMER = "6281234567890"
CUSTOMER_JID = f"{CUSTOMER}@s.whatsapp.net"


# Helpers ---------------------------------------------------------------------------------------------


class Recorder:
    """An ``on_event`` sink that appends, as the host's would enqueue."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def states(self) -> list[StateChanged]:
        return [e for e in self.snapshot() if isinstance(e, StateChanged)]

    def statuses(self) -> list[str]:
        return [s.status for s in self.states()]

    def wait(self, predicate: Callable[[list[Event]], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; events: {self.snapshot()}")

    def wait_status(self, status: str, timeout: float = 20.0, after: int = 0) -> StateChanged:
        self.wait(lambda evs: any(isinstance(e, StateChanged) and e.status == status for e in evs[after:]), status)
        return next(e for e in self.snapshot()[after:] if isinstance(e, StateChanged) and e.status == status)


def feed(client: Any, event: Any) -> None:
    """Hand a protobuf event to neonize's own dispatcher, as the Go side does (bytes + event code)."""
    data = event.SerializeToString()
    buffer = ctypes.create_string_buffer(data, max(len(data), 1))
    client.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])


def show_qr(client: Any, code: bytes) -> None:
    """Call neonize's QR entry point the way Go does (a NUL-terminated string's address)."""
    buffer = ctypes.create_string_buffer(code)
    client._NewClient__onQr(0, ctypes.addressof(buffer))


# Events as the Go side sends them: proto2, every field set.


def jid(user: str = "", server: str = "") -> Any:
    return pb.JID(User=user, Server=server, RawAgent=0, Device=0, Integrator=0, IsEmpty=not user)


def user(number: str) -> Any:
    return jid(number, "s.whatsapp.net")


def lid(number: str) -> Any:
    return jid(number, "lid")


def source(sender: Any, *, alt: Any = None, chat: Any = None, from_me: bool = False, group: bool = False) -> Any:
    return pb.MessageSource(
        Chat=chat or sender,
        Sender=sender,
        IsFromMe=from_me,
        IsGroup=group,
        SenderAlt=alt or jid(),
        RecipientAlt=jid(),
        BroadcastListOwner=jid(),
    )


def text_message(text: str, sender: Any, *, ts_ms: int = 1_700_000_000_123, **kwargs: Any) -> Any:
    info = pb.MessageInfo(
        MessageSource=source(sender, **kwargs),
        ID="3EB0C0FFEE",
        ServerID=0,
        Type="text",
        Pushname="Budi",
        Timestamp=ts_ms,
        Category="",
        Multicast=False,
        MediaType="",
        Edit="",
    )
    flags = dict.fromkeys(
        ("IsEphemeral", "IsViewOnce", "IsViewOnceV2", "IsViewOnceV2Extension", "IsDocumentWithCaption"), False
    )
    return pb.Message(
        Info=info,
        Message=WAMessage(conversation=text),
        IsLottieSticker=False,
        IsEdit=False,
        UnavailableRequestID="",
        RetryCount=0,
        **flags,
    )


def receipt(kind: int | None, ids: list[str], ts: int = 1_700_000_100) -> Any:
    event = pb.Receipt(MessageSource=source(user(CUSTOMER)), MessageIDs=ids, Timestamp=ts)
    if kind is not None:
        event.Type = kind
    return event


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[NeonizeSession, Recorder]]:
    """An in-process session whose client exists and has its handlers, but never connected."""
    recorder = Recorder()
    neonize_session = NeonizeSession("wa-handlers", NeonizeStore.sqlite(tmp_path / "neonize" / "h.db"), recorder)
    neonize_session.open()
    yield neonize_session, recorder
    neonize_session.stop()


def transport(tmp_path: Path, name: str, **kwargs: Any) -> NeonizeTransport:
    return NeonizeTransport(name, NeonizeStore.sqlite(tmp_path / "neonize" / f"{name}.db"), **kwargs)


# Connecting offline: backoff, states, failed, never a crash --------------------------------------------


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "child-process"])
def test_an_unreachable_whatsapp_backs_off_then_fails_without_crashing(tmp_path: Path, isolate: bool) -> None:
    recorder = Recorder()
    t = transport(
        tmp_path, f"wa-dial-{isolate}", isolate=isolate, reconnect_base=0.2, reconnect_cap=0.3, reconnect_attempts=3
    )
    started = time.monotonic()
    t.start(recorder)
    try:
        failed = recorder.wait_status(SessionStatus.FAILED)
        elapsed = time.monotonic() - started

        # connecting → disconnected (with the dial error and the next delay) per attempt, then failed
        assert recorder.statuses() == [
            "connecting",
            "disconnected",
            "connecting",
            "disconnected",
            "connecting",
            "failed",
        ]
        drops = [s for s in recorder.states() if s.status == "disconnected"]
        assert [d.detail.split(" failed:")[0] for d in drops if d.detail] == [
            "connect attempt 1 of 3",
            "connect attempt 2 of 3",
        ]
        assert all(d.detail and "failed to dial whatsapp web websocket" in d.detail for d in drops)
        assert failed.detail and failed.detail.startswith("gave up after 3 connect attempts")
        assert "failed to dial" in failed.detail
        # it really waited: at least 75 % of 0.2 s + 0.3 s between the attempts
        assert elapsed >= 0.75 * (0.2 + 0.3)
        assert not t.connected

        # the store was created private before neonize touched it
        db = tmp_path / "neonize" / f"wa-dial-{isolate}.db"
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700

        # a send now reaches the real client (in the child, through the pipe) and is a session error
        with pytest.raises(SessionError, match="client is nil|doesn't contain a device JID"):
            t.send_text(CUSTOMER_JID, "Tagihan Anda Rp150.000")
        # and so does a read receipt (WA_MARK_INCOMING_READ), not only the sends
        with pytest.raises(SessionError, match="client is nil|doesn't contain a device JID"):
            t.mark_read("3EB0A1B2C3D4E5F6", CUSTOMER)
        if isolate:
            assert t.pid is not None and t.pid != os.getpid()
    finally:
        t.stop()
    assert recorder.states()[-1] == StateChanged(status="disconnected", detail="stopped")
    assert not t.connected


def test_the_child_process_ends_with_stop(tmp_path: Path) -> None:
    recorder = Recorder()
    t = transport(tmp_path, "wa-stop", reconnect_base=5.0, reconnect_cap=5.0, reconnect_attempts=10)
    t.start(recorder)
    recorder.wait_status(SessionStatus.DISCONNECTED)  # first attempt failed; now waiting ~5 s
    pid = t.pid
    assert pid is not None
    started = time.monotonic()
    t.stop()
    assert time.monotonic() - started < 5.0  # the backoff wait is interrupted
    assert t.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(SessionError, match="not running"):
        t.send_text(CUSTOMER_JID, "after stop")


def test_a_killed_child_is_one_session_down_and_comes_back(tmp_path: Path) -> None:
    recorder = Recorder()
    t = transport(tmp_path, "wa-crash", reconnect_base=0.3, reconnect_cap=0.3, reconnect_attempts=50)
    t.start(recorder)
    try:
        recorder.wait_status(SessionStatus.CONNECTING)
        first = t.pid
        assert first is not None

        # A Go panic aborts the child with SIGABRT: the host (this process) lives on
        os.kill(first, signal.SIGABRT)
        recorder.wait(
            lambda evs: any(isinstance(e, StateChanged) and "SIGABRT" in (e.detail or "") for e in evs), "crash report"
        )
        crash = next(s for s in recorder.states() if "SIGABRT" in (s.detail or ""))
        assert crash.status == "disconnected"
        assert "was killed by SIGABRT" in (crash.detail or "") and "restarting it in" in (crash.detail or "")

        # and a new child connects again
        mark = len(recorder.snapshot())
        recorder.wait_status(SessionStatus.CONNECTING, after=mark)
        assert t.pid not in (None, first)
    finally:
        t.stop()


def test_a_send_the_child_never_answers_is_ambiguous_not_retried(tmp_path: Path) -> None:
    recorder = Recorder()
    t = transport(tmp_path, "wa-hang", reconnect_base=0.3, reconnect_cap=0.3, reconnect_attempts=50, call_timeout=0.5)
    t.start(recorder)
    try:
        recorder.wait_status(SessionStatus.CONNECTING)
        pid = t.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the child hangs (a Go call that never returns)
        try:
            with pytest.raises(AmbiguousSendError, match="may have been sent"):
                t.send_text(CUSTOMER_JID, "Voucher aktif")

            # and a send in flight when the child dies is ambiguous too
            t.call_timeout = 30.0
            outcome: list[BaseException] = []

            def send() -> None:
                try:
                    t.send_text(CUSTOMER_JID, "Voucher aktif")
                except BaseException as exc:
                    outcome.append(exc)

            sender = threading.Thread(target=send)
            sender.start()
            time.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
            sender.join(timeout=10)
            assert len(outcome) == 1
            assert isinstance(outcome[0], AmbiguousSendError)
            assert "SIGKILL during the send" in str(outcome[0])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    finally:
        t.stop()


# States that stop the reconnect loop ----------------------------------------------------------------------


def running_in_process(tmp_path: Path, name: str) -> tuple[NeonizeTransport, Recorder]:
    """An in-process transport retrying every ~50 ms for a long time (so events can be fed to it)."""
    recorder = Recorder()
    t = transport(tmp_path, name, isolate=False, reconnect_base=0.05, reconnect_cap=0.05, reconnect_attempts=10_000)
    t.start(recorder)
    recorder.wait(lambda evs: len(evs) >= 4, "a few attempts")
    return t, recorder


def test_a_logout_ends_the_reconnects(tmp_path: Path) -> None:
    t, recorder = running_in_process(tmp_path, "wa-logout")
    try:
        assert t.session is not None
        feed(t.session.client, pb.LoggedOut(OnConnect=True, Reason=pb.ConnectFailureReason.Value("LOGGED_OUT")))
        logged_out = recorder.wait_status(SessionStatus.LOGGED_OUT)
        assert logged_out.detail == "logged out (LOGGED_OUT, while connecting): link the device again"
        time.sleep(0.5)  # ten attempt periods
        assert recorder.statuses()[-1] == "logged_out"  # no connecting (nor anything else) after it
    finally:
        t.stop()


def test_a_replaced_stream_ends_the_reconnects(tmp_path: Path) -> None:
    t, recorder = running_in_process(tmp_path, "wa-replaced")
    try:
        assert t.session is not None
        feed(t.session.client, pb.StreamReplaced())
        recorder.wait(lambda evs: any(getattr(e, "detail", None) == STREAM_REPLACED for e in evs), "stream replaced")
        time.sleep(0.5)
        last = recorder.states()[-1]
        assert (last.status, last.detail) == ("disconnected", STREAM_REPLACED)
    finally:
        t.stop()


def test_a_temporary_ban_pauses_the_reconnects_until_it_expires(tmp_path: Path) -> None:
    t, recorder = running_in_process(tmp_path, "wa-ban")
    try:
        assert t.session is not None
        before = dt.datetime.now(dt.UTC)
        feed(t.session.client, pb.TemporaryBan(Code=pb.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=1))
        banned = recorder.wait_status(SessionStatus.BANNED)
        banned_at = time.monotonic()
        assert banned.detail == "temporary ban SEND_TO_TOO_MANY_PEOPLE (code 1), expires in 1 s"
        assert banned.until is not None
        assert before + dt.timedelta(seconds=1) <= banned.until <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        mark = len(recorder.snapshot())

        # sends are refused with the ban's end while it lasts (the host rests the number until then)
        with pytest.raises(BannedError) as refused:
            t.send_text(CUSTOMER_JID, "Tagihan")
        assert refused.value.until == banned.until

        time.sleep(0.6)
        assert recorder.snapshot()[mark:] == []  # nothing while banned
        recorder.wait_status(SessionStatus.CONNECTING, after=mark, timeout=5)
        assert time.monotonic() - banned_at >= 0.9  # connecting again only once the ban is over
    finally:
        t.stop()


# The registered handlers, fed through neonize's dispatcher ---------------------------------------------------


def test_one_handler_per_event_type_is_registered(session: tuple[NeonizeSession, Recorder]) -> None:
    neonize_session, _ = session
    registered = neonize_session.client.event.list_func
    for name in (
        "ConnectedEv",
        "DisconnectedEv",
        "LoggedOutEv",
        "TemporaryBanEv",
        "StreamReplacedEv",
        "ReceiptEv",
        "MessageEv",
    ):
        event_type = getattr(importlib.import_module("neonize.events"), name)
        assert callable(registered[EVENT_TO_INT[event_type]])


def test_qr_connected_receipt_and_message_through_the_dispatcher(session: tuple[NeonizeSession, Recorder]) -> None:
    neonize_session, recorder = session
    client = neonize_session.client

    show_qr(client, b"2@first,key,adv")
    show_qr(client, b"2@second,key,adv")
    feed(client, pb.Connected(status=True))
    feed(client, receipt(pb.Receipt.DELIVERED, ["3EB0A", "3EB0B", "3EB0C"]))
    feed(client, text_message("Sudah saya transfer", lid("123456789"), alt=user(CUSTOMER)))

    events = recorder.snapshot()
    assert events[0] == StateChanged(status="qr")
    assert events[1] == QRCode(code="2@first,key,adv", expires_in=60.0)
    assert events[2] == QRCode(code="2@second,key,adv", expires_in=20.0)
    assert events[3] == StateChanged(status="connected")
    assert events[4] == Receipt(
        wa_message_ids=("3EB0A", "3EB0B", "3EB0C"),
        kind="delivered",
        at=dt.datetime.fromtimestamp(1_700_000_100, dt.UTC),
    )
    assert events[5] == Incoming(
        sender=CUSTOMER,
        text="Sudah saya transfer",
        wa_message_id="3EB0C0FFEE",
        at=dt.datetime.fromtimestamp(1_700_000_000.123, dt.UTC),
    )
    assert len(events) == 6
    assert neonize_session.connected
    assert client.connected  # neonize's own flag, set by its dispatcher for ConnectedEv


def test_pairing_by_phone_needs_the_first_qr(session: tuple[NeonizeSession, Recorder]) -> None:
    neonize_session, _ = session
    with pytest.raises(SessionError, match="wait for the first QR"):
        neonize_session.pair_phone("+62 812-3456-7890")
    show_qr(neonize_session.client, b"2@code")
    # With a QR shown the call reaches the real client, which is not connected here
    with pytest.raises(SessionError):
        neonize_session.pair_phone("+62 812-3456-7890")


def test_a_failing_sink_never_reaches_gos_thread(tmp_path: Path) -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("database down")

    neonize_session = NeonizeSession("wa-broken", NeonizeStore.sqlite(tmp_path / "b.db"), broken)
    neonize_session.open()
    try:
        feed(neonize_session.client, pb.Connected(status=True))  # would raise into Go without the guard
        feed(neonize_session.client, receipt(pb.Receipt.READ, ["X"]))
        show_qr(neonize_session.client, b"2@x")
    finally:
        neonize_session.stop()


def test_ignored_events_emit_nothing(session: tuple[NeonizeSession, Recorder]) -> None:
    neonize_session, recorder = session
    client = neonize_session.client
    feed(client, receipt(pb.Receipt.SENDER, ["A"]))
    feed(client, receipt(pb.Receipt.READ_SELF, ["B"]))
    feed(client, text_message("own", user(CUSTOMER), from_me=True))
    feed(client, text_message("group", user(CUSTOMER), group=True))
    assert recorder.snapshot() == []


# An ambiguous send found by the secret it carried ---------------------------------------------------------


def _put_secret(store: NeonizeStore, wa_message_id: str, chat: str, secret: bytes) -> None:
    """What whatsmeow's ``SendMessage`` writes before the message leaves (``PutMessageSecret``), or
    its message handler for an incoming message with a secret."""
    insert = (
        "INSERT INTO whatsmeow_message_secrets (our_jid, chat_jid, sender_jid, message_id, key) "
        "VALUES ('628110000001@s.whatsapp.net', :chat, :chat, :id, :key)"
    )
    if store.is_postgres:
        from sqlalchemy import text

        from models.db import create

        engine = create(store.location)
        try:
            with engine.begin() as conn:
                conn.execute(text(f'SET LOCAL search_path TO "{store.schema}"'))
                conn.execute(text("SET LOCAL session_replication_role = replica"))  # no device row for the FK
                conn.execute(text(insert), {"chat": chat, "id": wa_message_id, "key": secret})
        finally:
            engine.dispose()
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(store.location)) as db, db:
            db.execute(insert, {"chat": chat, "id": wa_message_id, "key": secret})


def test_a_receipt_for_a_send_whose_answer_was_lost_finds_it_by_the_secret_in_the_device_store(
    settings: Settings,
) -> None:
    from sqlalchemy import select, text

    from models import Message, WhatsAppSession
    from models.db import create, session_scope
    from sessions_host.events import EventProcessor
    from sessions_host.transports.neonize.session import text_message, with_secret
    from sessions_host.transports.neonize.transport import sent_secrets
    from wa_tasks.pipeline import lifecycle

    # Given a neonize session's device store, with whatsmeow's tables
    store = NeonizeStore.for_session(settings.database, settings.data_path, "wa-n")
    assert stored_devices(store.prepare()) == []
    try:
        # And two sends its host died during, each with the secret the transport chose for it
        # (neonize cannot choose the id), the first carried in the message as it is sent
        t = NeonizeTransport("wa-n", store, isolate=False)
        tag, other = t.new_tag(), t.new_tag()
        assert tag.wa_message_id is None and tag.secret and len(bytes.fromhex(tag.secret)) == 32
        assert tag.secret != other.secret
        sent = with_secret(text_message("Tagihan Rp150.000"), tag.secret)
        assert sent.conversation == "Tagihan Rp150.000"
        assert sent.messageContextInfo.messageSecret == bytes.fromhex(tag.secret)
        failed_at = dt.datetime.now(dt.UTC)
        with session_scope(settings.database) as db:
            db.add(WhatsAppSession(session_id="wa-n", device_id="WA-N", transport="neonize"))
            db.flush()
            for message_id, secret in (("msg_lost", tag.secret), ("msg_other", other.secret)):
                db.add(
                    Message(
                        id=message_id,
                        to_number=CUSTOMER,
                        status="failed",
                        error_message=lifecycle.AMBIGUOUS_SEND,
                        failed_at=failed_at,
                        session_id="wa-n",
                        sending_at=failed_at,
                        send_secret=secret,
                    )
                )
        # And whatsmeow stored the first one's secret with the id it generated, before it left;
        # and an incoming message's secret under an id of its own
        chat = f"{CUSTOMER}@s.whatsapp.net"
        _put_secret(store, "3EB0C0FFEE0001", chat, sent.messageContextInfo.messageSecret)
        _put_secret(store, "3EB0INCOMING01", chat, os.urandom(32))
        assert sent_secrets(store, "3EB0C0FFEE0001") == [tag.secret]

        # When the delivery receipt for that id reaches the session host's event processor
        processor = EventProcessor(settings, on_state=lambda session_id, event: None)
        processor.start()
        try:
            at = failed_at + dt.timedelta(seconds=3)
            processor.sink_for("wa-n")(Receipt(wa_message_ids=("3EB0C0FFEE0001",), kind="delivered", at=at))
            processor.sink_for("wa-n")(Receipt(wa_message_ids=("3EB0INCOMING01",), kind="read", at=at))
            deadline = time.monotonic() + 20
            while True:
                with session_scope(settings.database) as db:
                    rows = {m.id: m for m in db.scalars(select(Message)).all()}
                    db.expunge_all()
                if rows["msg_lost"].status != "failed" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            processor.stop()

        # Then that send took the id and is delivered, confirmed by its receipt
        lost = rows["msg_lost"]
        assert (lost.status, lost.wa_message_id, lost.confirmed_by) == ("delivered", "3EB0C0FFEE0001", "receipt")
        # And the other send, whose secret no receipt's id was stored with, stays ambiguous
        assert (rows["msg_other"].status, rows["msg_other"].wa_message_id) == ("failed", None)
    finally:
        if store.is_postgres:
            engine = create(settings.database)
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE'))
            engine.dispose()


# The translations, on real protobuf events ---------------------------------------------------------------


def test_receipt_kinds() -> None:
    ids = ["3EB0A", "3EB0B"]
    assert receipt_event(receipt(pb.Receipt.DELIVERED, ids)) == Receipt(
        ("3EB0A", "3EB0B"), "delivered", dt.datetime.fromtimestamp(1_700_000_100, dt.UTC)
    )
    assert receipt_event(receipt(None, ids)).kind == "delivered"  # type: ignore[union-attr]  # proto2 default
    assert receipt_event(receipt(pb.Receipt.READ, ids)).kind == "read"  # type: ignore[union-attr]
    assert receipt_event(receipt(pb.Receipt.PLAYED, ids)).kind == "read"  # type: ignore[union-attr]
    for ignored in ("SENDER", "RETRY", "READ_SELF", "PLAYED_SELF", "SERVER_ERROR", "INACTIVE", "PEER_MSG"):
        assert receipt_event(receipt(pb.Receipt.ReceiptType.Value(ignored), ids)) is None, ignored
    assert receipt_event(receipt(pb.Receipt.READ, [])) is None


def test_incoming_messages() -> None:
    plain = incoming_event(text_message("halo", user(CUSTOMER)))
    assert plain == Incoming(CUSTOMER, "halo", "3EB0C0FFEE", dt.datetime.fromtimestamp(1_700_000_000.123, dt.UTC))

    # an @lid sender: the phone number comes from SenderAlt
    via_lid = incoming_event(text_message("halo", lid("987654321"), alt=user(CUSTOMER)))
    assert via_lid is not None and via_lid.sender == CUSTOMER
    assert incoming_event(text_message("halo", lid("987654321"))) is None  # no number known

    extended = text_message("", user(CUSTOMER))
    extended.Message.CopyFrom(WAMessage(extendedTextMessage=ExtendedTextMessage(text="cek https://isp.example")))
    assert incoming_event(extended).text == "cek https://isp.example"  # type: ignore[union-attr]

    assert incoming_event(text_message("x", user(CUSTOMER), from_me=True)) is None
    assert incoming_event(text_message("x", user(CUSTOMER), group=True)) is None
    assert incoming_event(text_message("story", user(CUSTOMER), chat=jid("status", "broadcast"))) is None
    assert incoming_event(text_message("", user(CUSTOMER))) is None  # protocol message, no content


def test_state_translations() -> None:
    out = logged_out_state(pb.LoggedOut(OnConnect=False, Reason=pb.ConnectFailureReason.Value("MAIN_DEVICE_GONE")))
    assert out == StateChanged(status="logged_out", detail="logged out (MAIN_DEVICE_GONE): link the device again")

    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    ban = temporary_ban_state(pb.TemporaryBan(Code=pb.TemporaryBan.BLOCKED_BY_USERS, Expire=3600), now)
    assert ban.status == "banned"
    assert ban.until == now + dt.timedelta(hours=1)
    assert ban.detail == "temporary ban BLOCKED_BY_USERS (code 2), expires in 3600 s"
    assert temporary_ban_state(pb.TemporaryBan(Code=pb.TemporaryBan.BROADCAST_LIST, Expire=0), now).until is None

    assert qr_code(b"2@abc", first=True) == QRCode("2@abc", 60.0)
    assert qr_code("2@abc", first=False) == QRCode("2@abc", 20.0)


def test_enum_names_fall_back_to_the_value() -> None:
    # A field that is no enum (an upgrade turned it into a number or text): the value itself, never
    # an exception in a handler on Go's event thread.
    assert enum_name(pb.LoggedOut(Reason=pb.ConnectFailureReason.Value("LOGGED_OUT")), "Reason") == "LOGGED_OUT"
    assert enum_name(pb.TemporaryBan(Expire=60), "Expire") == "60"
    assert enum_name(pb.ConnectFailure(Message="closed"), "Message") == "closed"


def test_timestamps_in_seconds_and_milliseconds() -> None:
    assert epoch_to_datetime(1_700_000_000) == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert epoch_to_datetime(1_700_000_000_500) == dt.datetime.fromtimestamp(1_700_000_000.5, dt.UTC)
    assert abs(epoch_to_datetime(0) - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


# The device store ---------------------------------------------------------------------------------------


def test_build_registers_neonize_with_the_store_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    t = transports.build("neonize", "wa-7", {"isolate": False, "reconnect_attempts": 2}, settings, hub=None)
    assert isinstance(t, NeonizeTransport)
    assert "neonize" in transports.AVAILABLE
    assert t.store == NeonizeStore.sqlite(tmp_path.resolve() / "neonize" / "wa-7.db")
    assert (t.isolate, t.backoff.attempts) == (False, 2)
    with pytest.raises(ValueError, match="unknown neonize transport option"):
        transports.build("neonize", "wa-7", {"latency_ms": 1}, settings, hub=None)

    pg = Settings(data_dir=tmp_path, database_url="postgresql+psycopg2://u:secret@db:5432/billing")
    store = transports.build("neonize", "wa-7", {}, pg, hub=None).store  # type: ignore[arg-type,attr-defined]
    assert store == NeonizeStore("postgresql+psycopg2://u:secret@db:5432/billing", schema_for("wa-7"))
    assert "secret" not in store.describe()


def test_postgres_urls_for_the_go_driver() -> None:
    assert (
        libpq_url("postgresql+psycopg2://u:p@db:5432/billing", "neonize_wa_1_abc")
        == "postgres://u:p@db:5432/billing?sslmode=prefer&search_path=neonize_wa_1_abc"
    )
    assert libpq_url("postgresql://db/x?sslmode=require") == "postgres://db/x?sslmode=require"
    with pytest.raises(ValueError):
        libpq_url("sqlite:///x.db")
    assert schema_for("wa-1") != schema_for("wa_1")  # same slug, different sessions
    assert schema_for("WA-1").startswith("neonize_wa_1_")
    assert len(schema_for("x" * 63)) <= 63


def test_a_postgres_store_gets_a_schema_of_its_own() -> None:
    from sqlalchemy import text

    from conftest import postgres_url
    from models.db import create

    url = postgres_url()
    store = NeonizeStore.postgres(url, "wa-neonize-test")
    engine = create(url)
    try:
        name = store.prepare()
        assert stored_devices(name) == []  # whatsmeow created its tables, no device yet
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'whatsmeow_device'")
            ).scalars()
            assert store.schema in set(tables)
            assert "public" not in set(
                conn.execute(
                    text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'whatsmeow_device'")
                ).scalars()
            )
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE'))
        engine.dispose()


def test_a_settled_session_drops_late_progress_states(tmp_path: Path) -> None:
    # The reconnect loop may report "connecting"/"disconnected" a moment after a handler settled the
    # session (logged out, banned); that late report must not overwrite the settled state.
    recorder = Recorder()
    neonize_session = NeonizeSession("wa-settled", NeonizeStore.sqlite(tmp_path / "s.db"), recorder)
    neonize_session._state(SessionStatus.CONNECTING, progress=True)
    neonize_session._signal(ban_seconds=30.0)
    neonize_session._state(SessionStatus.BANNED, "temporary ban")
    neonize_session._state(SessionStatus.DISCONNECTED, "connect attempt 3 of 10 failed", progress=True)
    neonize_session._signal(terminal=SessionStatus.LOGGED_OUT)
    neonize_session._state(SessionStatus.LOGGED_OUT, "logged out")
    neonize_session._state(SessionStatus.CONNECTING, progress=True)
    assert recorder.statuses() == ["connecting", "banned", "logged_out"]
    assert neonize_session.status == "logged_out"


# The type check of the calls into neonize -----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_checks_calls_into_neonize_against_its_signatures(tmp_path: Path) -> None:
    # neonize ships no py.typed: without the project's mypy override every call into it is Any, and
    # without protobuf's stubs every event type is compatible with every other.
    import mypy.api as mypy_api  # a test dependency (and a CI step): missing is a failure, not a skip

    snippet = tmp_path / "calls.py"
    snippet.write_text(
        "from neonize.client import NewClient\n"
        "from neonize.events import ConnectedEv, LoggedOutEv\n"
        "from neonize.utils.jid import build_jid\n\n\n"
        "def send(client: NewClient) -> None:\n"
        '    client.send_image(build_jid("6281234567890"), b"", captio="Tagihan")\n\n\n'
        "def on_logged_out(event: LoggedOutEv) -> None: ...\n\n\n"
        "on_logged_out(ConnectedEv())\n"
    )
    out, err, code = mypy_api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"), str(snippet)]
    )
    assert code == 1, out + err
    assert 'Unexpected keyword argument "captio" for "send_image"' in out
    assert 'incompatible type "Connected"; expected "LoggedOut"' in out
    assert "Found 2 errors in 1 file" in out  # and none from neonize's own modules


def test_the_installed_neonize_is_the_pinned_one_with_its_own_go_library() -> None:
    # The transport is checked against the pinned version; and neonize downloads its Go library at
    # import when the library's version differs from the package's, which fails offline.
    import neonize.download
    from neonize._binder import gocode

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {extra: [r for r in extras[extra] if r.startswith("neonize")] for extra in ("neonize", "test")}
    installed = version("neonize")
    assert pins == {"neonize": [f"neonize=={installed}"], "test": [f"neonize=={installed}"]}
    # the package's own idea of its library's version, and the library it loaded
    assert (neonize.download.__GONEONIZE_VERSION__, gocode.GetVersion().decode()) == (installed, installed)


# neonize's Go library of another version: a load failure, not connect attempts ----------------------------

_MISMATCHED_LIBRARY = """
import json, sys, threading, types
from pathlib import Path

# neonize.download as neonize's loader imports it: the package expects another version of the Go
# library than the one installed, and the download of the right one fails (offline).
fake = types.ModuleType("neonize.download")
fake.__GONEONIZE_VERSION__ = "0.0.0"
downloads = []


def download():
    downloads.append(1)
    raise OSError("no network")


fake.download = download
sys.modules["neonize.download"] = fake

from sessions_host.transports.neonize import Backoff, NeonizeSession, NeonizeStore

states, failed = [], threading.Event()


def sink(event):
    states.append([event.status, event.detail])
    if event.status == "failed":
        failed.set()


session = NeonizeSession("wa-lib", NeonizeStore.sqlite(Path(sys.argv[1])), sink, Backoff(0.05, 0.05, 3))
session.start()
failed.wait(60)
session.stop()
print(json.dumps({"states": states, "downloads": len(downloads)}))
"""


def test_a_go_library_of_another_version_fails_the_session_at_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _MISMATCHED_LIBRARY, str(tmp_path / "lib.db")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "NEONIZE_BOT_TAG": "off"},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["downloads"] == 3  # neonize's own three tries, once
    statuses = [status for status, _ in result["states"]]
    assert statuses == ["connecting", "failed", "disconnected"]  # no further attempts; then stop()
    detail = result["states"][1][1]
    assert detail.startswith("neonize cannot be loaded: neonize's Go library cannot be loaded")
    assert "version mismatch: found 0.5.2, expected 0.0.0" in detail
