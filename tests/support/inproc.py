"""The pipeline in one process, for the fast tier: what the worker, the session host and the web
process run, driven from the test itself on the simulated network, a message from ``send`` to
``delivered`` in a few hundredths of a second.

What runs as in production:

- the entry points: the thin client (``wa_tasks.client``), the HTTP API (FastAPI's ``TestClient``,
  :meth:`InProcess.api`) and the command line (click's ``CliRunner``, :meth:`InProcess.cli`), all
  configured from ``WA_*`` variables through ``get_settings()`` as a process is;
- the Celery tasks (``wa.dispatch``, ``wa.email_fallback`` ...), each run as a worker runs it: with
  a request of its own (id, retries, delivery info), a ``self.retry`` publishing the retry;
- the session host (``SessionHost``: reload from the database, leases, live state, the events
  thread that records state changes and receipts) and, for each session, its ``SessionRunner`` and
  ``Deliverer`` (the checks and the claim, pacing and the Redis guards, the send, the settle), on
  the simulated transport and its network;
- a SQLite database made by the project's migrations (migrated once, copied for each test).

What stands in:

- Redis is ``fakeredis`` with Lua, so the pace slot, recipient cap and lease scripts run unchanged;
  the code finds it under the settings' ``WA_REDIS_URL`` (``wa_tasks.infra.redis_client.use``);
- the broker is :class:`Broker`: the Celery app's ``send_task``, the one door every publish goes
  through, keeps each task (its arguments round-tripped through JSON, as the broker's serializer
  would) for :meth:`InProcess.run`, in the broker's order (priority step, then first in first out),
  with countdowns on a virtual clock that runs a retry at once;
- a runner takes no thread and no broker connection (:class:`Runner`): :meth:`InProcess.run` hands
  it each ``deliver`` of its queue, as its consumer would, and sees it acknowledged or requeued;
- each session's transport is wrapped in :class:`ScriptedTransport`, which a test can make fail a
  send on purpose (the simulated network has no ambiguous send of its own);
- Flower's events are recorded (:class:`RecordingMonitor`), not published.

What is left to the system tier (``tests/support/stack.py``): real processes and broker I/O, a
process killed, time really passing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from celery import Celery
from celery.exceptions import Retry
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

import wa_tasks.client
import wa_tasks.tasks  # noqa: F401  (registers the tasks on the app)
from models.db import dispose_all
from models.migrate import upgrade
from sessions_host.host import SessionHost
from sessions_host.monitor import Monitor
from sessions_host.runner import SessionRunner
from sessions_host.transports.base import EventSink, SendResult, SendTag, Transport
from sessions_host.transports.simnet import LedgerEntry, SimNet
from wa_tasks.admin import session_config
from wa_tasks.core import redis_keys, task_names
from wa_tasks.infra import celery_app, redis_client
from wa_tasks.pipeline import lifecycle, live_state
from wa_tasks.settings import Settings, get_settings

#: Statuses a message does not leave by itself (``sent`` and ``delivered`` move on with receipts).
TERMINAL = ("read", "failed", "cancelled")
#: How a message moves forward once sent.
PROGRESS = ("sent", "delivered", "read")

#: The simulated network's tick here: a state change or a receipt reaches the host within it.
HUB_TICK_SECONDS = 0.02

#: How often a wait looks again (each look reads the database: more often costs CPU for nothing).
POLL_SECONDS = 0.01

#: Settings of every in-process run, as ``WA_*`` variables (a test may override each).
DEFAULTS: dict[str, object] = {
    "pace_seconds": 0.0,
    "pace_jitter_seconds": 0.0,
    "sim_latency_ms": 0.0,
    # Delivered a moment after the send (a receipt that overtakes the "sent" write waits half a
    # second to be applied again, events.RECEIPT_PATIENCE_SECONDS), read an hour later: a message
    # settles at "delivered".
    "sim_delivered_after_seconds": 0.05,
    "sim_read_after_seconds": 3600.0,
    "log_level": "INFO",
    # Send windows have tests of their own; elsewhere a reminder or promotion sent at night (the
    # suite runs at any hour) would be held until the morning.
    "window_promotion": "always",
    "window_reminder": "always",
}


# The broker ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Published:
    """One task the app published."""

    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    countdown: float
    task_id: str
    retries: int
    #: When it is due on the broker's virtual clock.
    due: float = 0.0
    seq: int = 0

    def order(self) -> tuple[float, int, int]:
        return (self.due, self.priority, self.seq)


class Broker:
    """Stands in for Celery's broker (see the module docstring): keeps what ``send_task`` publishes."""

    def __init__(self) -> None:
        #: Everything published, in order.
        self.history: list[Published] = []
        self._waiting: list[tuple[tuple[float, int, int], Published]] = []
        #: The sequence number of the next task put on a queue.
        self.next_seq = 0
        #: The virtual clock: a task published with a countdown is due that much later.
        self.now = 0.0

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: float | None = None,
        eta: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        retries: int = 0,
        queue: str | None = None,
        priority: int | None = None,
        routing_key: str | None = None,
        **options: Any,
    ) -> Any:
        """``Celery.send_task``'s signature, as far as the project and ``Task.retry`` use it."""
        if eta is not None:
            raise NotImplementedError("the in-process broker takes countdowns, not ETAs")
        # As the broker's JSON serializer: what does not survive it fails here as it would there.
        body = json.loads(json.dumps({"args": list(args or ()), "kwargs": dict(kwargs or {})}))
        task = Published(
            name=name,
            args=body["args"],
            kwargs=body["kwargs"],
            queue=queue or routing_key or redis_keys.DEFAULT_QUEUE,
            priority=5 if priority is None else int(priority),  # celeryconfig's task_default_priority
            countdown=float(countdown or 0.0),
            task_id=task_id or str(uuid.uuid4()),
            retries=retries,
        )
        self.history.append(task)
        self._put(task, self.now + task.countdown)
        return celery_app.app.AsyncResult(task.task_id)

    def _put(self, task: Published, due: float) -> None:
        task.due, task.seq = due, self.next_seq
        self.next_seq += 1
        heapq.heappush(self._waiting, (task.order(), task))

    def put_back(self, task: Published) -> None:
        """Back on its queue (a requeue, or the orphan restore after a host died holding it)."""
        self._put(task, self.now)

    def take(self, runnable: Callable[[Published], bool]) -> Published | None:
        """The next due task that ``runnable`` accepts (the clock moves on to it), or None."""
        skipped: list[tuple[tuple[float, int, int], Published]] = []
        found = None
        while self._waiting:
            entry = heapq.heappop(self._waiting)
            if runnable(entry[1]):
                found = entry[1]
                break
            skipped.append(entry)
        for entry in skipped:
            heapq.heappush(self._waiting, entry)
        if found is not None:
            self.now = max(self.now, found.due)
        return found

    @property
    def waiting(self) -> list[Published]:
        return [task for _, task in sorted(self._waiting)]

    def published(self, name: str) -> list[Published]:
        return [task for task in self.history if task.name == name]


@dataclasses.dataclass
class Delivery:
    """A ``deliver`` as the session host's scheduler hands it on (the parts of ``kombu.Message`` the runner reads)."""

    task: Published
    broker: Broker
    acked: bool = False
    requeued: bool = False

    @property
    def headers(self) -> dict[str, Any]:
        return {"task": self.task.name, "id": self.task.task_id}

    @property
    def delivery_info(self) -> dict[str, Any]:
        return {"priority": self.task.priority, "routing_key": self.task.queue}

    @property
    def properties(self) -> dict[str, Any]:
        return {"priority": self.task.priority}

    def decode(self) -> list[Any]:
        """The body as Celery's message protocol has it: ``[args, kwargs, embed]``."""
        return [self.task.args, self.task.kwargs, {}]

    def ack(self) -> None:
        self.acked = True

    def requeue(self) -> None:
        self.requeued = True
        self.broker.put_back(self.task)


# The session host -------------------------------------------------------------------------------


class HostCrash(BaseException):  # noqa: N818  (not an error: the host's death, past every except Exception)
    """Raised by :class:`ScriptedTransport` to play the session host dying during a send."""


@dataclasses.dataclass
class Fault:
    error: BaseException
    #: Raised after the send reached the network (else before anything went out).
    after_send: bool = False


class ScriptedTransport:
    """A session's transport, passed through, except that a send first takes the next fault a test
    scripted (:meth:`fail_next`)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.session_id = inner.session_id
        self.faults: deque[Fault] = deque()
        #: Every send attempted through this transport: (jid, text).
        self.sends: list[tuple[str, str]] = []

    def fail_next(self, error: BaseException, *, after_send: bool = False) -> None:
        """Make the next send raise ``error``, before anything goes out or (``after_send``) once the
        network has the message: an ambiguous send, or the host dying (:class:`HostCrash`)."""
        self.faults.append(Fault(error, after_send))

    def start(self, on_event: EventSink) -> None:
        self.inner.start(on_event)

    def stop(self) -> None:
        self.inner.stop()

    @property
    def connected(self) -> bool:
        return self.inner.connected

    def new_tag(self) -> SendTag:
        return self.inner.new_tag()

    def send_text(self, jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        return self._send(jid, text, lambda: self.inner.send_text(jid, text, tag=tag))

    def send_media(
        self,
        jid: str,
        data: bytes,
        mimetype: str,
        caption: str = "",
        filename: str | None = None,
        tag: SendTag | None = None,
    ) -> SendResult:
        return self._send(jid, caption, lambda: self.inner.send_media(jid, data, mimetype, caption, filename, tag=tag))

    def _send(self, jid: str, text: str, send: Callable[[], SendResult]) -> SendResult:
        self.sends.append((jid, text))
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and not fault.after_send:
            raise fault.error
        result = send()
        if fault is not None:
            raise fault.error
        return result

    def __getattr__(self, name: str) -> Any:
        # The operator actions beyond the protocol (mark_read, logout, is_on_whatsapp ...).
        return getattr(self.inner, name)


class Runner(SessionRunner):
    """A ``SessionRunner`` whose messages the harness hands to it (:meth:`handle`) instead of the
    host's scheduler taking them from the broker."""

    transport: ScriptedTransport

    def __init__(self, app: Celery, settings: Settings, session_id: str, transport: Transport, *args: Any) -> None:
        super().__init__(app, settings, session_id, ScriptedTransport(transport), *args)

    def stop(self, timeout: float = 30.0) -> None:
        self.request_stop()
        self.transport.stop()

    def handle(self, delivery: Delivery) -> None:
        self.process(delivery)  # type: ignore[arg-type]


class RecordingMonitor(Monitor):
    """Flower's events of the host, kept in :attr:`sent` instead of published."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def _send(self, type_: str, **fields: Any) -> None:
        self.sent.append((type_, fields))


class Host(SessionHost):
    """The session host, started without its command listener (operator commands) and its Flower
    connection; its runners are :class:`Runner`."""

    runner_class = Runner
    redis_connections = None

    def __init__(self, app: Celery, settings: Settings) -> None:
        super().__init__(app, settings, hostname="sessions@inproc")
        self.monitor = RecordingMonitor(app, self.hostname, lambda: [], settings.heartbeat_seconds)
        # A shorter tick than a real host's: the simulated network's changes reach the test sooner.
        self.hub.TICK_SECONDS = HUB_TICK_SECONDS  # type: ignore[misc]

    def close(self) -> None:
        """``shutdown`` without what was not started."""
        runners = list(self.runners.values())
        for runner in runners:
            runner.stop()
            self._forget(runner.session_id)
        self.leases.leave()
        self.events.stop()
        self.hub.close()


# The harness --------------------------------------------------------------------------------------


def migrated_database(path: Path) -> Path:
    """A database file made by the project's migrations (the template each test copies)."""
    upgrade(f"sqlite:///{path}")
    dispose_all()
    return path


def copy_database(template: Path, path: Path) -> None:
    """Copy a SQLite database whole (its WAL included) with SQLite's backup."""
    source, target = sqlite3.connect(template), sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


class InProcess:
    """One in-process installation (see the module docstring). Use as a context manager, or close it."""

    def __init__(self, directory: Path, template: Path | None = None, **settings: object) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        database = directory / "wa-tasks.db"
        if template is None:
            migrated_database(database)
        else:
            copy_database(template, database)
        self._patch = pytest.MonkeyPatch()
        try:
            self._configure(directory, database, {**DEFAULTS, **settings})
        except BaseException:
            self._patch.undo()
            raise

    def _configure(self, directory: Path, database: Path, settings: dict[str, object]) -> None:
        patch = self._patch
        # The process's settings are read from the environment, as every entry point reads them.
        env = {
            "WA_DATA_DIR": str(directory / "var"),
            "WA_DATABASE_URL": f"sqlite:///{database}",
            # A name no Redis answers: everything that opens it gets the fake through client_for.
            "WA_REDIS_URL": f"redis://inproc-{uuid.uuid4().hex[:12]}:6379/0",
            **{f"WA_{name.upper()}": _env_value(value) for name, value in settings.items()},
        }
        for name, value in env.items():
            patch.setenv(name, value)
        for unset in ("WA_SIM_REDIS_URL", "WA_API_KEY"):
            if unset not in env:
                patch.delenv(unset, raising=False)
        get_settings.cache_clear()
        self.settings = get_settings()
        self.redis = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        redis_client.use(self.settings.redis, self.redis)
        self.simnet = SimNet(self.redis)
        # The broker: every publish of the app (and of the apps made for these settings) comes here.
        self.app = celery_app.app
        self.broker = Broker()
        patch.setitem(self.app.conf, "broker_url", self.settings.broker_url)
        patch.setattr(self.app, "send_task", self.broker.send_task)
        patch.setattr(self.app, "producer_or_acquire", lambda producer=None: contextlib.nullcontext(producer))
        # The thin client's module functions use a default client made from the settings.
        patch.setattr(wa_tasks.client, "_default", None)
        self.host = Host(self.app, self.settings)
        self.host.events.start()

    # Sessions -------------------------------------------------------------------------------------

    def add_session(
        self,
        device_id: str,
        *,
        priority: int = 1,
        options: dict[str, Any] | None = None,
        connect: bool = True,
    ) -> str:
        """Configure a simulated session as ``wa-tasks sessions add`` does, let the host start it
        and (``connect``) wait until routing sees it connected; returns its id."""
        session_id = session_config.add(self.settings, device_id=device_id, priority=priority, options=options)
        # A heartbeat without Flower's part (the tests check the events the sends record).
        self.host.renew_leases()
        self.host.report_live_states()
        self.host.reload()
        if connect:
            self.wait_for(lambda: self.live_status(session_id) == "connected", f"session {session_id} connected")
        return session_id

    def runner(self, session_id: str) -> Runner:
        runner = self.host.runners[session_id]
        assert isinstance(runner, Runner)
        return runner

    def live_status(self, session_id: str) -> str | None:
        """The session's status as ``dispatch`` sees it (its live state in Redis)."""
        state = live_state.read(self.redis, [session_id]).get(session_id)
        return state.status if state is not None else None

    # Running ----------------------------------------------------------------------------------------

    def run(self, steps: int | None = None, limit: int = 200) -> list[Published]:
        """Run what was published, in the broker's order, as the worker and the session host would:
        until nothing runnable is left (a ``deliver`` waits for its session's runner), or ``steps``
        tasks. Returns the tasks run.

        A task published with a countdown during this run waits for the next one, where the clock
        moves on to it: a dispatch that keeps finding no usable session retries once per run, not
        in a loop of its own."""
        started = self.broker.next_seq

        def runnable(task: Published) -> bool:
            return self._runnable(task) and (task.due <= self.broker.now or task.seq < started)

        done: list[Published] = []
        while steps is None or len(done) < steps:
            task = self.broker.take(runnable)
            if task is None:
                break
            self._execute(task)
            done.append(task)
            if len(done) >= limit:
                waiting = ", ".join(f"{t.name} {t.kwargs}" for t in self.broker.waiting[:5])
                raise AssertionError(f"still publishing after {limit} tasks; waiting: {waiting}")
        return done

    def _runnable(self, task: Published) -> bool:
        return task.name != task_names.DELIVER or _session_of(task.queue) in self.host.runners

    def _execute(self, task: Published) -> None:
        if task.name == task_names.DELIVER:
            delivery = Delivery(task, self.broker)
            try:
                self.runner(_session_of(task.queue)).handle(delivery)
            except HostCrash:
                # The host died holding the deliver: never acknowledged, it is put back on its queue
                # by the orphan restore of the host that takes the session over.
                self.broker.put_back(task)
            return
        job = self.app.tasks[task.name]
        job.push_request(
            id=task.task_id,
            args=task.args,
            kwargs=task.kwargs,
            retries=task.retries,
            delivery_info={"exchange": "", "routing_key": task.queue, "priority": task.priority},
            called_directly=False,
            is_eager=False,
            hostname="worker@inproc",
        )
        try:
            job.run(*task.args, **task.kwargs)
        except Retry:
            pass  # published again by self.retry, as a worker's retry is
        finally:
            job.pop_request()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 5.0, run: bool = True) -> None:
        """Run what is published (unless not ``run``) until ``condition`` holds (receipts and state
        changes arrive on the host's threads); fail saying ``what`` did not happen."""
        deadline = time.monotonic() + timeout
        while True:
            if run:
                self.run()
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s")
            time.sleep(POLL_SECONDS)

    def settle(self, message_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
        """Run until the message is ``status`` and return its status view; fail at once if it ends
        otherwise (a ``failed`` message when ``delivered`` was expected fails with its error)."""
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.update(wa_tasks.client.status(message_id))
            current = seen["status"]
            if current == status:
                return True
            # An ambiguous send is failed until its receipt (if any) comes: not an end yet.
            awaiting = seen.get("ambiguousSend") == lifecycle.AWAITING_RECEIPT and status in PROGRESS
            ended = (current in TERMINAL and not awaiting) or (
                status in PROGRESS and current in PROGRESS and PROGRESS.index(current) > PROGRESS.index(status)
            )
            if ended:
                raise AssertionError(f"message {message_id} is {current}, not {status}: {seen}")
            return False

        self.wait_for(reached, f"message {message_id} {status} (last seen: {seen})", timeout)
        return seen

    # Entry points and what the network saw ---------------------------------------------------------

    def api(self, **kwargs: Any) -> TestClient:
        """The web process's app under FastAPI's test client (``with inproc.api() as http: ...``)."""
        from wa_tasks.web.app import create_app

        return TestClient(create_app(), **kwargs)

    def cli(self, *args: str) -> Result:
        """``wa-tasks ARGS`` in this process (click's CliRunner)."""
        from wa_tasks.cli.main import cli

        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    def ledger(self, number: str | None = None) -> list[LedgerEntry]:
        """What the recipients' phones received."""
        return self.simnet.ledger(number)

    # Ending -------------------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.host.close()
        finally:
            redis_client.forget(self.settings.redis)
            dispose_all()
            self._patch.undo()
            get_settings.cache_clear()

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def in_process(directory: Path, template: Path | None = None, **settings: object) -> Iterator[InProcess]:
    running = InProcess(directory, template, **settings)
    try:
        yield running
    finally:
        running.close()


def _session_of(queue: str) -> str:
    prefix = redis_keys.session_queue("")
    return queue[len(prefix) :] if queue.startswith(prefix) else ""


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
