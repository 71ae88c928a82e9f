"""The simulated transport: a realistic stand-in for WhatsApp that tests, the demo and the
benchmarks run on.

It has what matters about the real thing: send latency, injected failures, a QR code that rotates
until "scanned" (or automatic pairing), connections that drop and come back, delivery and read
receipts after delays, and a recipient-side ledger of every accepted message (``simnet``). As on
WhatsApp, a send carries the message id its sender chose, the network accepts a message half-way
through the send's round trip (a sender killed during a send may or may not have reached the
ledger), and receipts wait on the network for the sending device until it is connected again.
Randomness comes from a seed, so a run can be repeated. All simulated sessions of a process share
one ``SimHub`` thread, so hundreds of them stay cheap.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

from models.statuses import SessionStatus
from sessions_host.transports.banmodel import BanModel, BanRules, Device, Verdict
from sessions_host.transports.base import (
    BannedError,
    EventSink,
    Incoming,
    QRCode,
    Receipt,
    RecipientError,
    RestrictedError,
    SendResult,
    SendTag,
    SessionError,
    StateChanged,
    TransientSendError,
)
from sessions_host.transports.simnet import LedgerEntry, Reply, SimNet, now_iso
from wa_tasks.core.phone import mask
from wa_tasks.core.transports import SimOptions

log = logging.getLogger(__name__)


class SimHub:
    """One thread per process driving every simulated session: watches the network state in Redis
    (drops, scans, pairings), hands connected sessions their due receipts and replies, and fires
    timed events."""

    TICK_SECONDS = 0.25

    def __init__(self, simnet: SimNet) -> None:
        self.simnet = simnet
        self._transports: dict[str, SimulatedTransport] = {}
        #: The registered sessions that are not connected (each tick looks at these; at every
        #: session only when the network's devices or drops changed).
        self._unconnected: set[str] = set()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        #: The network's devices and drops as last read, and their version then with the count of
        #: registrations (None: read again).
        self._version: tuple[str, int] | None = None
        self._registered = 0
        self._dropped: set[str] = set()
        self._devices: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="sim-hub", daemon=True)
        self._thread.start()

    def register(self, transport: SimulatedTransport) -> None:
        with self._cond:
            self._transports[transport.session_id] = transport
            self._registered += 1
            if not transport.connected:
                self._unconnected.add(transport.session_id)

    def unregister(self, transport: SimulatedTransport) -> None:
        with self._cond:
            self._transports.pop(transport.session_id, None)
            self._unconnected.discard(transport.session_id)

    def state_changed(self, transport: SimulatedTransport) -> None:
        with self._cond:
            if transport.session_id not in self._transports:
                return
            if transport.connected:
                self._unconnected.discard(transport.session_id)
            else:
                self._unconnected.add(transport.session_id)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))
            self._cond.notify()

    def _tick(self) -> None:
        """What changed on the network since the last tick reaches the sessions: the devices and
        drops (read again only when their version changed: then every session looks at them,
        otherwise only those not connected, which wait for a pairing, a scan or a ban's end) and
        the replies and receipts waiting for this hub's connected sessions (found by one read of
        the sessions that something waits for). An idle hub makes two small reads a tick and
        looks at no connected session."""
        replies: dict[str, list[Reply]] = {}
        receipts: dict[str, list[tuple[str, str, float]]] = {}
        dropped: set[str] | None
        devices: dict[str, str] | None
        try:
            version = self.simnet.version()
            with self._cond:
                # A session registered since the last read needs its device read too.
                changed = (version, self._registered) != self._version
                mine, registered = list(self._transports), self._registered
            if changed:
                # Only this hub's sessions' devices: other hosts' sessions share the network.
                self._dropped, self._devices = self.simnet.dropped(), self.simnet.devices(mine)
                self._version = (version, registered)
            dropped, devices = self._dropped, self._devices
            now = time.time()
            due = self.simnet.due_sessions(now)
            with self._cond:
                ticked = list(self._transports.values()) if changed else self._of(self._unconnected)
                waiting = [s for s in due if s in self._transports and s not in self._unconnected]
            replies, receipts = self.simnet.take_due(waiting, now)
        except Exception as exc:
            log.warning("simulated network unreachable: %s", exc)
            dropped, devices, self._version = None, None, None
            with self._cond:
                ticked = list(self._transports.values())
        for transport in ticked:
            _safely(functools.partial(transport._tick, dropped, devices))
        with self._cond:
            by_id = self._of(set(replies) | set(receipts))
        for transport in by_id:
            for reply in replies.get(transport.session_id, ()):
                _safely(functools.partial(transport._receive, reply))
            for wa_id, kind, at in receipts.get(transport.session_id, ()):
                _safely(functools.partial(transport._receipt, wa_id, kind, at))

    def _of(self, session_ids: set[str]) -> list[SimulatedTransport]:
        return [self._transports[s] for s in session_ids if s in self._transports]

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        next_tick = 0.0
        while True:
            due: list[Callable[[], None]] = []
            with self._cond:
                if self._stop:
                    return
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                tick = False
                if now >= next_tick:
                    # The next tick is scheduled whether or not a session is registered: a hub with
                    # none would otherwise wait for a tick that is always due, and spin.
                    tick = bool(self._transports)
                    next_tick = now + self.TICK_SECONDS
            for fn in due:
                _safely(fn)
            if tick:
                self._tick()
            with self._cond:
                if self._stop:
                    return
                wake = next_tick
                if self._timers:
                    wake = min(wake, self._timers[0][0])
                self._cond.wait(timeout=max(0.0, wake - time.monotonic()))


def _new_id() -> str:
    return "SIM" + uuid.uuid4().hex[:17].upper()


def _safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        log.exception("simulated network callback failed")


class SimulatedTransport:
    """One simulated WhatsApp connection (implements ``Transport``)."""

    def __init__(self, session_id: str, options: SimOptions, hub: SimHub) -> None:
        self.session_id = session_id
        self.options = options
        self.hub = hub
        self.simnet = hub.simnet
        self._rng = random.Random(f"{options.seed}:{session_id}")
        self._ban = BanModel(BanRules(**options.ban_rules)) if options.ban_model else None
        self._device = Device(linked_at=time.time() - options.linked_days_ago * 86400.0)
        self._lock = threading.Lock()
        self._state = SessionStatus.DISCONNECTED
        self._started = False
        self._qr_expires = 0.0
        self._number: str | None = None
        self._on_event: EventSink = lambda event: None

    # Transport interface -------------------------------------------------------------------------

    def start(self, on_event: EventSink) -> None:
        self._on_event = on_event
        with self._lock:
            self._started = True
        self._set(SessionStatus.CONNECTING)
        self.hub.register(self)

    def stop(self) -> None:
        self.hub.unregister(self)
        with self._lock:
            self._started = False
        self.simnet.show_qr(self.session_id, None)
        self._set(SessionStatus.DISCONNECTED, "stopped")

    @property
    def connected(self) -> bool:
        return self._state == SessionStatus.CONNECTED

    @property
    def state(self) -> str:
        return self._state

    def new_tag(self) -> SendTag:
        """An id in the simulated network's format; the send given it carries it, as whatsmeow's
        ``SendRequestExtra.ID`` does."""
        return SendTag(wa_message_id=_new_id())

    def send_text(self, jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        return self._send(jid, text, message_id=tag.wa_message_id if tag else None)

    def send_media(
        self,
        jid: str,
        data: bytes,
        mimetype: str,
        caption: str = "",
        filename: str | None = None,
        tag: SendTag | None = None,
    ) -> SendResult:
        kind = "image" if mimetype.startswith("image/") else "document"
        message_id = tag.wa_message_id if tag else None
        return self._send(jid, caption, kind=kind, mimetype=mimetype, size=len(data), message_id=message_id)

    def _send(
        self,
        jid: str,
        text: str,
        *,
        kind: str = "text",
        mimetype: str | None = None,
        size: int | None = None,
        message_id: str | None = None,
    ) -> SendResult:
        if self._state != SessionStatus.CONNECTED:
            raise SessionError(f"websocket not connected (session is {self._state})")
        latency = self._rng.uniform(0.5, 1.5) * self.options.latency_ms / 1000.0
        fails = self._rng.random() < self.options.failure_rate
        delivered_after = self._rng.uniform(0.5, 1.5) * self.options.delivered_after_seconds
        read_after = delivered_after + self._rng.uniform(0.5, 1.5) * self.options.read_after_seconds
        # The message travels half the round trip to the server, which accepts or refuses it (one
        # round trip to the simulated network's state); its answer travels the other half back.
        if latency:
            time.sleep(latency / 2)
        to = jid.split("@", 1)[0]
        wa_id = message_id or _new_id()
        sender = self._number or self.simnet.device_number(self.session_id) or "?"
        sent = time.time()
        entry = LedgerEntry(
            session=self.session_id,
            sender=sender,
            to=to,
            text=text,
            wa_message_id=wa_id,
            at=now_iso(),
            kind=kind,
            mimetype=mimetype,
            size=size,
        )
        receipts = [("delivered", sent + delivered_after), ("read", sent + read_after)]
        # Ban safety's verdict comes between the server's checks and its taking the message, so
        # with a ban model the server is asked twice.
        answer = self.simnet.accept(entry, receipts, record=not fails and self._ban is None)
        try:
            self._refused(answer, jid)
            if fails:
                raise TransientSendError("timed out waiting for message send response")
            if self._ban is not None:
                self._judge(to, text)
                self._refused(self.simnet.accept(entry, receipts), jid)
        except Exception:
            time.sleep(latency / 2)
            raise
        if latency:
            time.sleep(latency / 2)
        return SendResult(wa_message_id=wa_id)

    def _refused(self, answer: str, jid: str) -> None:
        """Raise as WhatsApp would for the simulated server's ``answer`` to a send (``SimNet.accept``)."""
        if answer == "dropped":
            self._set(SessionStatus.DISCONNECTED, "connection dropped")
            raise SessionError("websocket disconnected before message send returned response")
        if answer == "absent":
            raise RecipientError(f"{mask(jid)} is not on WhatsApp")

    # Operator actions (as the neonize transport offers them) ----------------------------------

    def is_on_whatsapp(self, numbers: list[str]) -> dict[str, bool]:
        """One query round trip to the simulated server."""
        if self._state != SessionStatus.CONNECTED:
            raise SessionError(f"websocket not connected (session is {self._state})")
        time.sleep(self._rng.uniform(0.5, 1.5) * self.options.latency_ms / 1000.0)
        return {n: self.simnet.is_on_whatsapp(n) for n in numbers}

    def pair_phone(self, phone: str) -> str:
        """An 8-character code to type on the phone; the phone confirming it is ``SimNet.scan``."""
        if self._state != SessionStatus.QR:
            raise SessionError(f"pairing needs a session waiting for a QR scan (it is {self._state})")
        return "".join(self._rng.choice("ABCDEFGHJKLMNPQRSTVWXYZ23456789") for _ in range(8))

    def mark_read(self, wa_message_id: str, sender: str) -> None:
        """A read receipt to the customer: the simulated network records it (``SimNet.read_receipts``)."""
        self.simnet.record_read(self.session_id, wa_message_id, sender)

    def logout(self) -> None:
        """Unlink the device: the session needs a new QR scan (or pairing code) afterwards."""
        self.simnet.unpair(self.session_id)

    def _judge(self, to: str, text: str) -> None:
        """The ban model's verdict on this send: raise as WhatsApp would."""
        assert self._ban is not None
        verdict, until = self._ban.verdict(self._device, time.time(), to, text)
        if verdict == Verdict.RESTRICTED:
            raise RestrictedError(f"server returned error 463 ({self._device.reason})")
        if verdict == Verdict.BANNED:
            ends = dt.datetime.fromtimestamp(until, dt.UTC)
            self._set(SessionStatus.BANNED, self._device.reason, until=ends)
            raise BannedError(f"temporarily banned until {ends.isoformat()} ({self._device.reason})", ends)

    # Driven by the hub ---------------------------------------------------------------------------

    def _receive(self, reply: Reply) -> None:
        """A customer's message reaches this session (``SimNet.reply``)."""
        at = dt.datetime.fromisoformat(reply.at.replace("Z", "+00:00"))
        self._on_event(Incoming(sender=reply.sender, text=reply.text, wa_message_id=reply.wa_message_id, at=at))

    def _receipt(self, wa_id: str, kind: str, due: float) -> None:
        """A receipt the network held for this device: ``at`` is when the phone got (or read) the
        message, which may be long before a device that was offline receives the receipt."""
        self._on_event(Receipt(wa_message_ids=(wa_id,), kind=kind, at=dt.datetime.fromtimestamp(due, dt.UTC)))

    def _set(self, status: SessionStatus, detail: str | None = None, until: dt.datetime | None = None) -> None:
        with self._lock:
            if self._state == status:
                return
            self._state = status
        self.hub.state_changed(self)
        self._on_event(StateChanged(status=status, detail=detail, phone_number=self._number, until=until))

    def _tick(self, dropped: set[str] | None, devices: dict[str, str] | None) -> None:
        if not self._started:
            return
        if dropped is None or devices is None:  # the network (Redis) is unreachable
            self._set(SessionStatus.DISCONNECTED, "network unreachable")
            return
        state = self._state
        is_dropped = self.session_id in dropped
        number = devices.get(self.session_id)
        if state == SessionStatus.CONNECTED:
            if is_dropped:
                self._set(SessionStatus.DISCONNECTED, "connection dropped")
            elif number is None:
                self._number = None
                self._set(SessionStatus.LOGGED_OUT, "device unlinked")
        elif state in (SessionStatus.CONNECTING, SessionStatus.DISCONNECTED):
            if is_dropped:
                self._set(SessionStatus.DISCONNECTED, "connection dropped")
            elif number is not None:
                self._number = number
                self._set(SessionStatus.CONNECTED)
            elif self.options.auto_pair:
                self._number = self.simnet.pair(self.session_id)
                self._set(SessionStatus.CONNECTED, "paired automatically")
            else:
                self._show_new_qr()
        elif state == SessionStatus.QR:
            if self.simnet.take_scan(self.session_id):
                self._number = self.simnet.pair(self.session_id)
                self.simnet.show_qr(self.session_id, None)
                self._set(SessionStatus.CONNECTED, "QR scanned")
            elif time.monotonic() >= self._qr_expires:
                self._show_new_qr()
        elif state == SessionStatus.BANNED and time.time() >= self._device.banned_until:
            self._set(SessionStatus.CONNECTED, "temporary ban over")
        elif state == SessionStatus.LOGGED_OUT and number is not None:
            # Re-paired from outside (e.g. `wa-tasks sim pair`).
            self._set(SessionStatus.CONNECTING)

    def _show_new_qr(self) -> None:
        code = f"2@{uuid.uuid4().hex},{uuid.uuid4().hex[:24]},{self.session_id}"
        self._qr_expires = time.monotonic() + self.options.qr_rotate_seconds
        self.simnet.show_qr(self.session_id, code)
        self._set(SessionStatus.QR)
        self._on_event(QRCode(code=code, expires_in=self.options.qr_rotate_seconds))
