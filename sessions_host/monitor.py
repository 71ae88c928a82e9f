"""Makes a session host visible in Flower like a Celery worker.

- Events: ``worker-online``/``worker-heartbeat``/``worker-offline`` and, for every send,
  ``task-received``/``task-started``/``task-succeeded``/``task-failed`` named ``wa.deliver``.
  Events are queued by whichever thread has them and published by the remote-control thread, on
  its broker connection, every ``TASK_EVENT_FLUSH_SECONDS``: one connection for both (a kombu
  connection is not shared between threads, and each costs the host a Redis connection). Task
  events go out together (Celery's ``task.multi`` batch, which Flower's event receiver reads like
  single events) up to ``TASK_EVENT_BATCH`` at a time: three broker publishes a message cost the
  host more CPU than the send itself at high rates; Flower sees a send at most that much later.
- Remote control: answers every command Flower sends, over the broker's pidbox: its ``inspect``
  calls (``active_queues`` lists the session queues, so Flower's Broker page shows each queue's
  depth), ``ping`` and ``enable_events`` (sent every few seconds); the commands that would change
  a Celery worker's pool, queues, limits or tasks are refused with the way to do it instead, and
  unknown commands answered with an error, logged at DEBUG only.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from celery import Celery

import wa_tasks
from wa_tasks.core import task_names

log = logging.getLogger(__name__)

SOFTWARE = "wa-tasks-sessions"
#: Task events buffered before they are published in one message ...
TASK_EVENT_BATCH = 100
#: ... or after this long, whichever comes first.
TASK_EVENT_FLUSH_SECONDS = 0.5
#: Events kept while the broker is unreachable (the oldest are dropped beyond this: best effort).
OUTBOX_LIMIT = 10_000


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
        #: Events waiting for the remote-control thread to publish them.
        self._outbox: deque[tuple[str, dict[str, Any]]] = deque(maxlen=OUTBOX_LIMIT)
        self._stop = threading.Event()
        self._last_warning = -1e9
        self._thread = threading.Thread(target=self._control_loop, name="monitor-control", daemon=True)

    # Events ------------------------------------------------------------------------------------

    def start(self) -> None:
        self._send("worker-online", **self._worker_fields())
        self._thread.start()

    def stop(self) -> None:
        """Publish what is queued and ``worker-offline``, then close the connection."""
        self._send("worker-offline", **self._worker_fields())
        self._stop.set()
        self._thread.join(timeout=5)

    def heartbeat(self) -> None:
        self._send("worker-heartbeat", **self._worker_fields())

    def task_received(self, task_id: str, kwargs: dict[str, Any], queue: str, priority: int | None) -> None:
        with self._lock:
            self.active[task_id] = {
                "id": task_id,
                "name": task_names.DELIVER,
                "kwargs": kwargs,
                "delivery_info": {"routing_key": queue, "priority": priority},
                "hostname": self.hostname,
                "time_start": time.time(),
            }
        self._send(
            "task-received",
            uuid=task_id,
            name=task_names.DELIVER,
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
        self._outbox.append((type_, fields))

    def _publish(self, dispatcher: Any) -> None:
        """Publish the queued events (remote-control thread only: it owns the connection)."""
        while self._outbox:
            type_, fields = self._outbox.popleft()
            dispatcher.send(type_, **fields)
        dispatcher.flush()

    def _event_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:  # say it, but not once per message in an outage
            self._last_warning = now
            log.warning("Flower events not sent: %s", exc)

    # Remote control ----------------------------------------------------------------------------

    def _handlers(self) -> _Handlers:
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
                "clock": str(self.app.clock.value),
                "total": {task_names.DELIVER: self.processed},
            }

        def active(state: Any, **_: Any) -> list[dict[str, Any]]:
            with self._lock:
                return list(self.active.values())

        def query_task(state: Any, ids: Any = (), **_: Any) -> dict[str, Any]:
            wanted = [ids] if isinstance(ids, str) else list(ids or ())
            with self._lock:
                return {i: ("active", self.active[i]) for i in wanted if i in self.active}

        def empty(state: Any, **_: Any) -> list[Any]:
            return []

        def registered(state: Any, **_: Any) -> list[str]:
            return [task_names.DELIVER]

        def conf(state: Any, **_: Any) -> dict[str, Any]:
            return {
                "broker_transport_options": self.app.conf.broker_transport_options,
                "task_default_priority": self.app.conf.task_default_priority,
            }

        def heartbeat(state: Any, **_: Any) -> None:
            self.heartbeat()

        def hello(state: Any, from_node: str | None = None, **_: Any) -> dict[str, Any] | None:
            # A Celery worker starting up syncs with the others (mingle): nothing revoked here.
            if from_node == self.hostname:
                return None
            return {"revoked": [], "clock": self.app.clock.forward()}

        def refuse(reason: str) -> Callable[..., dict[str, str]]:
            def handler(state: Any, **_: Any) -> dict[str, str]:
                return {"error": reason}

            return handler

        sessions_are_configured = "sessions are added and removed with `wa-tasks sessions add|remove`"
        handlers: dict[str, Callable[..., Any]] = {
            "ping": lambda state, **_: {"ok": "pong"},
            "active_queues": active_queues,
            "stats": stats,
            "active": active,
            "dump_active": active,
            "query_task": query_task,
            "registered": registered,
            "dump_tasks": registered,
            "reserved": empty,
            "dump_reserved": empty,
            "scheduled": empty,
            "dump_schedule": empty,
            "revoked": empty,
            "dump_revoked": empty,
            "conf": conf,
            "dump_conf": conf,
            "report": lambda state, **_: {"ok": f"{SOFTWARE} {wa_tasks.__version__}\n{self.app.bugreport()}"},
            "clock": lambda state, **_: {"clock": self.app.clock.value},
            "hello": hello,
            "heartbeat": heartbeat,
            # Flower turns task events on every few seconds; a session host always sends them.
            "enable_events": lambda state, **_: {"ok": "task events already enabled"},
            "disable_events": refuse("a session host always sends task events"),
            "election": lambda state, **_: None,
            "revoke": refuse("a send cannot be revoked on the session host"),
            "terminate": refuse("a send cannot be revoked on the session host"),
            "revoke_by_stamped_headers": refuse("a send cannot be revoked on the session host"),
            "rate_limit": refuse("a session's pace sets its rate: `wa-tasks sessions set SESSION --pace SECONDS`"),
            "time_limit": refuse("sends have no time limit to change"),
            "pool_grow": refuse(sessions_are_configured),
            "pool_shrink": refuse(sessions_are_configured),
            "autoscale": refuse(sessions_are_configured),
            "add_consumer": refuse(sessions_are_configured),
            "cancel_consumer": refuse(sessions_are_configured),
            "pool_restart": refuse("reconnect a session with `wa-tasks sessions reconnect SESSION`"),
            "shutdown": refuse("a session host is stopped where it was started (SIGTERM), not remotely"),
        }
        return _Handlers({name: self._answering(name, fn) for name, fn in handlers.items()})

    @staticmethod
    def _answering(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` answering with its error in one log line: kombu logs a handler's exception with
        its whole traceback, every time Flower asks."""

        def handler(state: Any, **arguments: Any) -> Any:
            try:
                reply = fn(state, **arguments)
            except Exception as exc:
                log.warning("remote control %s failed: %s", name, exc)
                return {"error": repr(exc)}
            if isinstance(reply, dict) and "error" in reply:
                log.info("remote control %s refused: %s", name, reply["error"])
            return reply

        return handler

    def _control_loop(self) -> None:
        while True:
            try:
                with self.app.connection_for_read() as conn:
                    channel = conn.default_channel
                    node = self.app.control.mailbox.Node(self.hostname, handlers=self._handlers(), channel=channel)
                    dispatcher = self.app.events.Dispatcher(
                        channel=channel,
                        hostname=self.hostname,
                        enabled=True,
                        buffer_group=["task"],
                        buffer_limit=TASK_EVENT_BATCH,
                    )
                    with node.listen():
                        while not self._stop.is_set():
                            self._publish(dispatcher)
                            try:
                                conn.drain_events(timeout=TASK_EVENT_FLUSH_SECONDS)
                            except TimeoutError:
                                continue
                    self._publish(dispatcher)  # what the host said last, ``worker-offline`` included
                    return
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._event_failed(exc)
                log.warning("remote control listener restarting after: %s", exc)
                self._stop.wait(2.0)


class _Handlers(dict[str, Callable[..., Any]]):
    """Remote-control handlers that answer a command they do not know (a newer Flower's or
    Celery's) with an error, logged at DEBUG only: kombu raises KeyError for it and logs that
    with its traceback."""

    def __missing__(self, method: str) -> Callable[..., dict[str, str]]:
        def unsupported(state: Any, **_: Any) -> dict[str, str]:
            log.debug("remote control %s is not supported by a session host", method)
            return {"error": f"{method} is not supported by a session host"}

        return unsupported
