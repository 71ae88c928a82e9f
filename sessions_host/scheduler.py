"""The host's scheduler: which of its sessions may take a message now, and one loop that takes
messages for exactly those sessions from their queues (``wa.session.<id>``) and hands each to a
small pool of send threads.

Why one loop for every session rather than a consumer per session: a consumer per session costs a
thread and two Redis connections each and wakes every half second to poll, so a host's idle cost
and Redis's client count grow with the number of sessions (a thousand numbers were 2,000 Redis
clients). Here a host holds a handful of connections whatever its sessions, and an idle host only
waits. A slow, paced or dead session still never stalls another: a session only takes a message
when it is *ready*, and a send occupies one pool thread, not the loop.

A session is ready when none of its messages is in flight, it is not stopping, its pace slot is
open and it is connected (or down past the failover grace, to move its backlog on; see
``SessionRunner.ready_in``). The loop blocks in one ``BRPOP`` over the ready sessions' queues, each
session's priority lists highest first, and this host's wake list; whatever can make a session ready
(a send finished, a session connected, started or stopped) pushes to the wake list, and a pace slot
opening ends the wait by its timeout. So an urgent message goes out in its session's next slot, and
nothing polls.

The broker's bookkeeping is kombu's, on one kombu channel, as a kombu consumer keeps it: a message
taken is recorded in the transport's ``unacked`` hash before it is handed on, acknowledged (or put
back) after its outcome is written; the messages a dead host held are put back on their queues when
a host starts their session (``restore_orphans``). The Celery message protocol on the queues is
unchanged: Flower, ``send_task`` callers and workers see no difference.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery
from kombu.serialization import prepare_accept_content

from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import unacked

if TYPE_CHECKING:
    from sessions_host.runner import SessionRunner

log = logging.getLogger(__name__)

#: The longest the loop blocks without a reason to wake: how late a session whose readiness
#: changed without telling the scheduler is noticed. An idle host issues one BRPOP this often.
MAX_WAIT_SECONDS = 5.0
#: How often the loop puts back messages unacknowledged past the visibility timeout (as kombu's
#: consumers do; the sweeper covers the same loss much sooner).
RESTORE_VISIBLE_EVERY = 30.0
#: Messages decoded from the session queues: JSON only (a pickle put on a queue is never loaded).
ACCEPT = prepare_accept_content(["json"])


class Scheduler:
    """Takes messages for the ready sessions of one host; see the module docstring."""

    def __init__(self, app: Celery, redis_url: str, waker: redis.Redis, hostname: str, threads: int) -> None:
        self.app = app
        self.hostname = hostname
        self.threads = threads
        self.wake_key = redis_keys.host_wake(hostname)
        self.redis_url = redis_url
        #: The host's own client (its connection pool), for the wake-ups.
        self._waker = waker
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send")
        self._lock = threading.Lock()
        #: The sessions served, in the order they get the next chance (the last served goes last).
        self._runners: dict[str, SessionRunner] = {}
        #: Sessions added since the loop last looked: their queues are declared and their orphans
        #: restored before they take anything.
        self._new: set[str] = set()
        #: Each admitted session's Redis lists, highest priority first (only these may take).
        self._keys: dict[str, list[str]] = {}
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        #: True while the loop is (about to be) blocked: only then does a wake need a Redis write.
        self._blocking = False
        self._stop = threading.Event()
        self._retry_in = 1.0
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    # Called by the host ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages; wait for the sends in flight; close the broker connection (kombu
        puts back any message still unacknowledged)."""
        self._stop.set()
        self.wake()
        self._thread.join(timeout=timeout)
        self._pool.shutdown(wait=True)

    def add(self, runner: SessionRunner) -> None:
        runner.wake = self.wake
        with self._lock:
            self._runners[runner.session_id] = runner
            self._new.add(runner.session_id)
        self.wake()

    def remove(self, session_id: str) -> None:
        """Take nothing more for ``session_id`` (the runner waits for its own send in flight)."""
        with self._lock:
            self._runners.pop(session_id, None)
            self._new.discard(session_id)
            self._keys.pop(session_id, None)
        self.wake()

    def wake(self) -> None:
        """Something may have made a session ready: end the loop's wait."""
        if not self._blocking:
            return
        self._blocking = False
        try:
            self._waker.lpush(self.wake_key, 1)
        except redis.RedisError as exc:
            # The loop finds out at its next timeout at the latest (and meets the same outage).
            log.debug("could not wake the scheduler: %s", exc)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # The loop --------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except Exception as exc:
                log.warning("broker connection lost (%s); reconnecting in %.0fs", exc, self._retry_in)
                self._stop.wait(self._retry_in)
                self._retry_in = min(30.0, self._retry_in * 2)

    def _serve(self) -> None:
        # The blocking reads get a connection of their own, with a socket timeout above the longest wait.
        reader = redis.Redis.from_url(
            self.redis_url,
            socket_connect_timeout=5,
            socket_timeout=MAX_WAIT_SECONDS + 10,
            single_connection_client=True,
        )
        try:
            self._serve_on(reader)
        finally:
            reader.close()

    def _serve_on(self, reader: redis.Redis) -> None:
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            _share_client(channel)
            # Sends of the previous connection finish first: their acknowledgements went to a
            # connection that is gone, so what they leave unacknowledged is put back below.
            self._wait_idle()
            with self._lock:
                self._new.update(self._runners)
                self._keys.clear()
            # Connected again: the next outage starts over from the shortest wait. Carried over,
            # every outage would leave the sessions longer without their queues after Redis is back.
            self._retry_in = 1.0
            restored_at = 0.0
            while not self._stop.is_set():
                self._admit(channel)
                if time.monotonic() - restored_at >= RESTORE_VISIBLE_EVERY:
                    channel.qos.restore_visible(num=channel.unacked_restore_limit, interval=1)
                    restored_at = time.monotonic()
                self._take_one(channel, reader)

    def _admit(self, channel: Any) -> None:
        """Declare the queues of the sessions added since the last look, and put back what a host
        that died took from them and never acknowledged: without this it would wait for the
        broker's visibility timeout (an hour). Nothing of their queues is in flight here (a stopped
        session's runner waited for its send), and a session is served by one host at a time."""
        with self._lock:
            new = {s: self._runners[s] for s in self._new if s in self._runners}
            self._new.clear()
        if not new:
            return
        queues = {runner.queue_name: session_id for session_id, runner in new.items()}
        for name in queues:
            self.app.amqp.queues[name](channel).declare()
        restored: dict[str, int] = {}
        for tag, exchange, routing_key in unacked(channel):
            session_id = queues.get(routing_key) or queues.get(exchange)
            if session_id is not None:
                channel.qos.restore_by_tag(tag)
                restored[session_id] = restored.get(session_id, 0) + 1
        with self._lock:
            for name, session_id in queues.items():
                if session_id in self._runners:
                    self._keys[session_id] = _priority_keys(channel, name)
        for session_id, count in restored.items():
            log.warning(
                "session %s: %d unacknowledged message(s) of a previous host put back on its queue",
                session_id,
                count,
                extra={"session_id": session_id},
            )

    def _take_one(self, channel: Any, reader: redis.Redis) -> None:
        """Wait for one message of a ready session (or a wake, or the next pace slot) and hand it on."""
        self._blocking = True
        now = time.monotonic()
        ready: list[tuple[SessionRunner, list[str]]] = []
        wait = MAX_WAIT_SECONDS
        with self._lock:
            room = self._in_flight < self.threads
            runners = [(r, self._keys[s]) for s, r in self._runners.items() if s in self._keys]
        for runner, session_keys in runners:
            ready_in = runner.ready_in(now)
            if ready_in is None:
                continue
            if ready_in <= 0:
                ready.append((runner, session_keys))
            else:
                wait = min(wait, ready_in)
        keys: list[str] = []
        owner: dict[str, SessionRunner] = {}
        if room:
            for runner, session_keys in ready:
                keys.extend(session_keys)
                owner.update(dict.fromkeys(session_keys, runner))
        keys.append(self.wake_key)
        # A wait shorter than Redis' timeout resolution would return at once: BRPOP's 0 means forever.
        popped = reader.brpop(keys, timeout=max(wait, 0.01))
        self._blocking = False
        if popped is None:
            return
        key, raw = (_text(part) for part in popped)
        if key == self.wake_key:
            reader.delete(self.wake_key)  # the other wakes it holds are answered by this one
            return
        runner = owner[key]
        with self._lock:
            current = self._runners.get(runner.session_id) is runner
        if not current or runner.ready_in(time.monotonic()) is None:
            # Removed or stopping while the read was on the way: back at the head of its list, as
            # if never taken (nothing recorded it yet).
            reader.rpush(key, raw)
            return
        self._hand_on(channel, runner, json.loads(raw))

    def _hand_on(self, channel: Any, runner: SessionRunner, payload: dict[str, Any]) -> None:
        message = channel.Message(payload, channel=channel)
        message.accept = ACCEPT
        channel.qos.append(message, message.delivery_tag)  # recorded as unacknowledged, as kombu does
        runner.busy = True
        with self._lock:
            self._in_flight += 1
            # Round robin: the session served last gets the next chance last.
            self._runners.pop(runner.session_id, None)
            self._runners[runner.session_id] = runner
        self._pool.submit(self._process, runner, message)

    def _process(self, runner: SessionRunner, message: Any) -> None:
        try:
            runner.process(message)
        except Exception:
            log.exception("session %s: a message was not processed", runner.session_id)
        finally:
            runner.busy = False
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()
            self.wake()

    def _wait_idle(self) -> None:
        with self._lock:
            while self._in_flight:
                self._idle.wait()


def _share_client(channel: Any) -> None:
    """Give ``channel`` one redis-py client for its commands. kombu's Redis channel builds a new
    client object (over its one connection pool) for every record and acknowledgement of a message,
    a tenth of the host's CPU per message; a client is thread-safe, so one serves them all."""
    create = channel._create_client
    shared = create()
    channel._create_client = lambda asynchronous=False: create(asynchronous=True) if asynchronous else shared


def _priority_keys(channel: Any, queue: str) -> list[str]:
    """The Redis lists of one queue, highest priority first, named as kombu's Redis transport names
    them (``broker_transport_options`` in celeryconfig.py)."""
    return [channel._q_for_pri(queue, pri) for pri in channel.priority_steps]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
