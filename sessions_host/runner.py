"""One session's consumer: a thread with its own broker connection that takes messages from
``wa.session.<id>`` one at a time (prefetch 1, ack after the outcome is written), in priority
order, at the session's pace.

Why a thread and a connection per session rather than one Celery worker over all session queues:
a worker's single consumer reserves messages across queues, so one session's paced backlog would
occupy every slot while other sessions wait. Here a slow, paced or dead session only ever blocks
its own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery
from kombu import Consumer
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
from wa_tasks.infra.redis_client import unacked
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
        #: Wait before the next attempt to reach the broker (doubles while it stays unreachable).
        self._retry_in = 1.0
        #: Called when ban safety changes the session's availability (the host republishes it).
        self.on_availability: Any = lambda runner: None
        self._thread = threading.Thread(target=self._run, name=f"session-{session_id}", daemon=True)

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self, on_event: Any) -> None:
        self.transport.start(on_event)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the send in flight, take no new message, close the connection."""
        self._stop.set()
        self._thread.join(timeout=timeout)
        self.transport.stop()

    def set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.status_since = time.time()
        if status == SessionStatus.CONNECTED:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = time.monotonic()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

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

    # Consuming -----------------------------------------------------------------------------------

    def _ready_to_take(self) -> bool:
        """May the next message be taken now? Connected: when the pacing slot is open.
        Down: only after the failover grace, to move the backlog to other sessions."""
        if self.transport.connected:
            return self.pacer.wait(self._stop)
        down_since = self._down_since if self._down_since is not None else time.monotonic()
        if time.monotonic() - down_since >= self.settings.failover_grace_seconds:
            return not self._stop.is_set()
        self._stop.wait(0.2)
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
                self._retry_in = 1.0
            except Exception as exc:
                log.warning(
                    "session %s: broker connection lost (%s); reconnecting in %.0fs",
                    self.session_id,
                    exc,
                    self._retry_in,
                    extra={"session_id": self.session_id},
                )
                self._stop.wait(self._retry_in)
                self._retry_in = min(30.0, self._retry_in * 2)

    def _consume(self) -> None:
        queue = self.app.amqp.queues[self.queue_name]
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            self._restore_orphans(channel)
            consumer = Consumer(
                channel, queues=[queue], callbacks=[self._on_message], accept=["json"], prefetch_count=1
            )
            with consumer:
                # Consuming again: the next outage starts over from the shortest wait. The backoff
                # spaces out attempts during one outage; carried over, every outage would leave the
                # session longer without its queue (1, 2, 4 … 30 s) after Redis is back.
                self._retry_in = 1.0
                while not self._stop.is_set():
                    if not self._ready_to_take():
                        continue
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        continue

    def _restore_orphans(self, channel: Any) -> None:
        """Put back the messages of this session's queue that a consumer took and never
        acknowledged: the host that held them died (kill -9, power loss). Without this they would
        wait for the broker's visibility timeout (an hour). Nothing of this queue is in flight here
        when consuming starts, and a session is served by one host at a time."""
        restored = 0
        for tag, exchange, routing_key in unacked(channel):
            if self.queue_name in (routing_key, exchange):
                channel.qos.restore_by_tag(tag)
                restored += 1
        if restored:
            log.warning(
                "session %s: %d unacknowledged message(s) of a previous host put back on its queue",
                self.session_id,
                restored,
                extra={"session_id": self.session_id},
            )

    def _on_message(self, body: Any, message: KombuMessage) -> None:
        headers = message.headers or {}
        task_id = headers.get("id", "?")
        if headers.get("task") != task_names.DELIVER:
            log.error("session %s: unexpected task %r on its queue, dropped", self.session_id, headers.get("task"))
            message.ack()
            return
        try:
            _args, kwargs, _embed = body
            message_id = kwargs["message_id"]
        except (ValueError, TypeError, KeyError):
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
            self._stop.wait(2.0)
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
