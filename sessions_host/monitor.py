"""Makes a session host visible in Flower like a Celery worker.

- Events: ``worker-online``/``worker-heartbeat``/``worker-offline`` and, for every send,
  ``task-received``/``task-started``/``task-succeeded``/``task-failed`` named ``wa.deliver``.
  Task events are buffered and published together (Celery's ``task.multi`` batch, which Flower's
  event receiver reads like single events) every ``TASK_EVENT_FLUSH_SECONDS`` or
  ``TASK_EVENT_BATCH`` events: three broker publishes a message cost the host more CPU than the
  send itself at high rates; Flower sees a send at most that much later.
- Remote control: answers Flower's ``inspect`` calls (``active_queues`` lists the session queues,
  so Flower's Broker page shows each queue's depth) and ``ping``.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu import Connection

import wa_tasks

log = logging.getLogger(__name__)

SOFTWARE = "wa-tasks-sessions"
#: Task events buffered before they are published in one message ...
TASK_EVENT_BATCH = 100
#: ... or after this long, whichever comes first.
TASK_EVENT_FLUSH_SECONDS = 0.5


class Monitor:
    def __init__(
        self, app: Celery, hostname: str, active_queues: Callable[[], list[str]], heartbeat_seconds: float
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.active_queues = active_queues
        self.heartbeat_seconds = heartbeat_seconds
        self.started = time.time()
        self.processed = 0
        self.active: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._dispatcher: Any = None
        self._stop = threading.Event()
        self._last_warning = -1e9
        self._thread = threading.Thread(target=self._control_loop, name="monitor-control", daemon=True)
        self._flusher = threading.Thread(target=self._flush_loop, name="monitor-flush", daemon=True)

    # Events ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._flusher.start()
        self._send("worker-online", **self._worker_fields())

    def stop(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5)
        self.flush()
        self._send("worker-offline", **self._worker_fields())
        self._thread.join(timeout=5)
        with self._lock:
            if self._connection is not None:
                self._connection.release()
                self._connection = None

    def heartbeat(self) -> None:
        self._send("worker-heartbeat", **self._worker_fields())

    def task_received(self, task_id: str, kwargs: dict[str, Any], queue: str, priority: int | None) -> None:
        with self._lock:
            self.active[task_id] = {
                "id": task_id,
                "name": "wa.deliver",
                "kwargs": kwargs,
                "delivery_info": {"routing_key": queue, "priority": priority},
                "hostname": self.hostname,
                "time_start": time.time(),
            }
        self._send(
            "task-received",
            uuid=task_id,
            name="wa.deliver",
            args="()",
            kwargs=repr(kwargs),
            retries=0,
            eta=None,
            expires=None,
            root_id=task_id,
            parent_id=None,
            queue=queue,
        )
        self._send("task-started", uuid=task_id)

    def task_done(self, task_id: str, result: str, runtime: float, failed: str | None = None) -> None:
        with self._lock:
            self.active.pop(task_id, None)
            self.processed += 1
        if failed:
            self._send("task-failed", uuid=task_id, exception=failed, traceback="")
        else:
            self._send("task-succeeded", uuid=task_id, result=repr(result), runtime=runtime)

    def _worker_fields(self) -> dict[str, Any]:
        return {
            "freq": self.heartbeat_seconds,
            "active": len(self.active),
            "processed": self.processed,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "sw_ident": SOFTWARE,
            "sw_ver": wa_tasks.__version__,
            "sw_sys": platform.system(),
        }

    def _send(self, type_: str, **fields: Any) -> None:
        with self._lock:
            try:
                if self._dispatcher is None:
                    self._connection = self.app.connection_for_write()
                    self._dispatcher = self.app.events.Dispatcher(
                        self._connection,
                        hostname=self.hostname,
                        enabled=True,
                        buffer_group=["task"],
                        buffer_limit=TASK_EVENT_BATCH,
                    )
                self._dispatcher.send(type_, **fields)
            except Exception as exc:  # events are best effort; a send must not fail because of them
                self._event_failed(type_, exc)

    def flush(self) -> None:
        """Publish the buffered task events now."""
        with self._lock:
            if self._dispatcher is None:
                return
            try:
                self._dispatcher.flush()
            except Exception as exc:
                self._event_failed("task events", exc)

    def _flush_loop(self) -> None:
        while not self._stop.wait(TASK_EVENT_FLUSH_SECONDS):
            self.flush()

    def _event_failed(self, type_: str, exc: Exception) -> None:
        """Called with the lock held: drop the dispatcher (its buffered events with it)."""
        now = time.monotonic()
        if now - self._last_warning > 60:  # say it, but not once per message in an outage
            self._last_warning = now
            log.warning("Flower event %s not sent: %s", type_, exc)
        self._dispatcher = None
        if self._connection is not None:
            self._connection.release()
            self._connection = None

    # Remote control ----------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[..., Any]]:
        def active_queues(state: Any, **_: Any) -> list[dict[str, Any]]:
            result = []
            for name in self.active_queues():
                queue = self.app.amqp.queues[name]
                result.append(queue.as_dict(recurse=True))
            return result

        def stats(state: Any, **_: Any) -> dict[str, Any]:
            broker = self.app.connection_for_read().info()
            broker.pop("password", None)
            return {
                "pid": os.getpid(),
                "uptime": int(time.time() - self.started),
                "prefetch_count": 1,
                "pool": {
                    "implementation": "one consumer thread per session",
                    "max-concurrency": len(self.active_queues()),
                    "processes": [os.getpid()],
                },
                "broker": broker,
                "total": {"wa.deliver": self.processed},
            }

        def active(state: Any, **_: Any) -> list[dict[str, Any]]:
            with self._lock:
                return list(self.active.values())

        def empty(state: Any, **_: Any) -> list[Any]:
            return []

        return {
            "ping": lambda state, **_: {"ok": "pong"},
            "active_queues": active_queues,
            "stats": stats,
            "active": active,
            "registered": lambda state, **_: ["wa.deliver"],
            "reserved": empty,
            "scheduled": empty,
            "revoked": empty,
            "conf": lambda state, **_: {
                "broker_transport_options": self.app.conf.broker_transport_options,
                "task_default_priority": self.app.conf.task_default_priority,
            },
        }

    def _control_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    node = self.app.control.mailbox.Node(
                        self.hostname, handlers=self._handlers(), channel=conn.default_channel
                    )
                    consumer = node.listen()
                    with consumer:
                        while not self._stop.is_set():
                            try:
                                conn.drain_events(timeout=1.0)
                            except TimeoutError:
                                continue
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("remote control listener restarting after: %s", exc)
                    self._stop.wait(2.0)
