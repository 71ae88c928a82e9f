"""One session on a session host: its transport, pacing, ban safety and lease, what decides when
it may take its next message (``ready_in``), and what happens to a message it took (``process``:
deliver, then acknowledge or put back after the outcome is written).

A runner has no thread or broker connection of its own: the host's scheduler
(``sessions_host.scheduler``) takes a message from ``wa.session.<id>`` only while the runner is
ready, one at a time, and runs ``process`` on a pool thread. So a slow, paced or dead session only
ever holds back its own queue.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery
from kombu.message import Message as KombuMessage

from models.statuses import SessionStatus
from sessions_host.delivery import Deliverer, Outcome
from sessions_host.leases import Lease
from sessions_host.limits import LeaseLost, Limits
from sessions_host.monitor import Monitor
from sessions_host.pacing import Pacer
from sessions_host.safety import Decision, SessionSafety
from sessions_host.transports.base import Transport
from wa_tasks.core import redis_keys, task_names
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


class SessionRunner:
    def __init__(
        self,
        app: Celery,
        settings: Settings,
        session_id: str,
        transport: Transport,
        pace_seconds: float,
        monitor: Monitor,
        limits: Limits,
        safety: SessionSafety,
        lease: Lease | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.session_id = session_id
        self.queue_name = redis_keys.session_queue(session_id)
        self.transport = transport
        self.pace_seconds = pace_seconds
        self.pacer = Pacer(pace_seconds, jitter=settings.pace_jitter_seconds)
        self.monitor = monitor
        self.limits = limits
        self.safety = safety
        #: The lease under which this host serves the session (None: leases switched off).
        self.lease = lease
        #: Set when a send found the lease held by another host.
        self.lost = False
        #: The session's own number once the transport reports it (used by the health probe).
        self.phone_number: str | None = None
        #: Ban safety took the session out of rotation until then / it takes no new contacts until then.
        self.available_until = 0.0
        self.new_contacts_until = 0.0
        self.deliverer = Deliverer(app, settings, session_id, transport, gate=self)
        self.status: str = SessionStatus.DISCONNECTED
        self.status_since = time.time()
        self._down_since: float | None = time.monotonic()
        self._stop = threading.Event()
        #: Set while none of this session's messages is being processed (see :attr:`busy`).
        self._idle = threading.Event()
        self._idle.set()
        #: No message is taken before then (monotonic): a delivery that could not reach the database
        #: slows its session down.
        self._not_before = 0.0
        #: Tells the scheduler that this runner may have become ready (set by the scheduler).
        self.wake: Any = lambda: None
        #: Called when ban safety changes the session's availability (the host republishes it).
        self.on_availability: Any = lambda runner: None

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self, on_event: Any) -> None:
        self.transport.start(on_event)

    def request_stop(self) -> None:
        self._stop.set()
        self.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Take no new message, let the send in flight finish, close the transport."""
        self.request_stop()
        self._idle.wait(timeout)
        self.transport.stop()

    @property
    def busy(self) -> bool:
        """A message of this session is being processed (set and cleared by the scheduler)."""
        return not self._idle.is_set()

    @busy.setter
    def busy(self, value: bool) -> None:
        if value:
            self._idle.clear()
        else:
            self._idle.set()

    def set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.status_since = time.time()
        if status == SessionStatus.CONNECTED:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = time.monotonic()
        self.wake()

    # Gate (see delivery.Gate) ---------------------------------------------------------------------

    def recipient_wait(self, number: str, message_id: str) -> float:
        return self.limits.recipient_send(number, message_id, self.settings.recipient_hourly_cap)

    def take_slot(self) -> bool:
        """Local pace first, then the Redis slot that every host of this session shares (slower for a
        while after a WhatsApp restriction)."""
        factor = self.safety.pace_factor()
        self.pacer.interval = self.pace_seconds * factor
        if not self.pacer.wait(self._stop):
            return False
        try:
            granted = self.limits.wait_for_slot(
                self.session_id, self.pace_seconds * factor, self._stop, self.lease.value if self.lease else ""
            )
        except LeaseLost as exc:
            # Fencing: another host owns the session now. Send nothing more; the host stops us.
            log.warning("%s; not sending", exc, extra={"session_id": self.session_id})
            self.lost = True
            self._stop.set()
            return False
        if not granted:
            return False
        self.pacer.used()
        return True

    def safety_check(self, number: str) -> tuple[Decision, bool]:
        decision, is_new = self.safety.check(number)
        if not decision.allowed:
            if decision.new_contacts_only:
                self.new_contacts_until = decision.until
            else:
                self.available_until = decision.until
            self.on_availability(self)
        return decision, is_new

    def reconsider_caps(self) -> None:
        """The number's age changed, so the warm-up caps it reached may not hold any more: back in
        rotation, and the next message's check decides again. A WhatsApp restriction still in force
        is found by that check (the pause is in the safety store) and takes it out again."""
        self.available_until = 0.0
        self.new_contacts_until = 0.0
        self.on_availability(self)

    def safety_sent(self, number: str, is_new: bool) -> None:
        self.safety.sent(number, is_new)

    def restricted(self, reason: str, until: float | None) -> None:
        self.available_until = self.safety.restricted(reason, until)
        log.warning(
            "session %s restricted by WhatsApp (%s): out of rotation until %s, then slower",
            self.session_id,
            reason,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.available_until)),
            extra={"session_id": self.session_id},
        )
        self.on_availability(self)

    # Taking messages -----------------------------------------------------------------------------

    def ready_in(self, now: float) -> float | None:
        """Seconds (monotonic ``now``) until this session may take its next message, 0 if it may
        now; None while it may not until something happens (a message in flight, stopping).
        Connected: when its pace slot opens, so that the message taken is the most urgent one
        waiting then. Down: only after the failover grace, to move its backlog to other sessions."""
        if self.busy or self._stop.is_set():
            return None
        wait = self._not_before - now
        if self.transport.connected:
            return max(wait, self.pacer.delay())
        down_since = self._down_since if self._down_since is not None else now
        return max(wait, self.settings.failover_grace_seconds - (now - down_since))

    def process(self, message: KombuMessage) -> None:
        """Deliver one message taken from this session's queue; acknowledge it once its outcome is
        written, or put it back on the queue (deferred, or the database unreachable)."""
        headers = message.headers or {}
        task_id = headers.get("id", "?")
        if headers.get("task") != task_names.DELIVER:
            log.error("session %s: unexpected task %r on its queue, dropped", self.session_id, headers.get("task"))
            message.ack()
            return
        try:
            _args, kwargs, _embed = message.decode()
            message_id = kwargs["message_id"]
        except Exception:
            log.error("session %s: malformed deliver message %s dropped", self.session_id, task_id)
            message.ack()
            return
        priority = (message.delivery_info or {}).get("priority") or message.properties.get("priority")
        self.monitor.task_received(task_id, kwargs, self.queue_name, priority)
        started = self.pacer.now()
        try:
            outcome = self.deliverer.deliver(message_id)
        except Exception as exc:
            # Database unreachable or a bug: leave the message in the queue and slow down.
            log.exception(
                "session %s: deliver %s failed; message returned to the queue",
                self.session_id,
                message_id,
                extra={"message_id": message_id, "session_id": self.session_id},
            )
            self.monitor.task_done(task_id, "error", time.monotonic() - started, failed=repr(exc))
            message.requeue()
            self._not_before = time.monotonic() + 2.0
            return
        if outcome == Outcome.DEFERRED:
            message.requeue()
        else:
            message.ack()
        self.monitor.task_done(
            task_id,
            outcome.value,
            self.pacer.now() - started,
            failed=None if outcome != Outcome.FAILED else "send failed",
        )
