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
``SessionRunner.ready_in``). The scheduler keeps the set of ready sessions rather than asking every
session each time: whatever can change a session's readiness (a send finished, a status changed,
started or stopped) marks that session and wakes the loop through this host's wake list, and a
session that becomes ready later (its pace slot, the grace) waits in a timer heap. The loop blocks in
one ``BRPOP`` over the ready sessions' queues, each session's priority lists highest first, and the
wake list, with the next timer as its timeout; while every send thread is busy nothing can be taken,
and the loop waits in the process for one to finish instead (no Redis write wakes it). So an
urgent message goes out in its session's next slot, nothing polls, and a change costs the work of
its own session, not of all of them: what lets one host keep thousands of sessions. Every
``MAX_WAIT_SECONDS`` every session is looked at again, so a change that was never announced would
still be noticed within that time.

The broker's bookkeeping is kombu's, on one kombu channel, as a kombu consumer keeps it: a message
taken is recorded in the transport's ``unacked`` hash before it is handed on, acknowledged (or put
back) after its outcome is written; the messages a dead host held are put back on their queues when
a host starts their session (``restore_orphans``). The Celery message protocol on the queues is
unchanged: Flower, ``send_task`` callers and workers see no difference.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import redis
from celery import Celery
from kombu.serialization import prepare_accept_content
from kombu.transport import virtual

from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import unacked

if TYPE_CHECKING:
    from sessions_host.runner import SessionRunner

log = logging.getLogger(__name__)

#: The longest the loop blocks without a reason to wake: how late a session whose readiness
#: changed without telling the scheduler would be noticed (every change is announced; this is the
#: safety net). An idle host issues one BRPOP this often, over every ready session's lists: a
#: thousand sessions' ten thousand keys take the host ~15 ms to send.
MAX_WAIT_SECONDS = 15.0
#: After a wake, the loop waits this long per key of its last BRPOP (at most ``COALESCE_MAX_SECONDS``)
#: before the next, gathering the changes that come meanwhile: redis-py takes about 1.5 µs a key to
#: send one, so the loop spends at most about a quarter of its time sending BRPOPs however fast
#: sessions change, and a host of ten sessions waits half a millisecond.
COALESCE_SECONDS_PER_KEY = 5e-6
COALESCE_MAX_SECONDS = 0.1
#: How often the loop puts back messages unacknowledged past the visibility timeout (as kombu's
#: consumers do; the sweeper covers the same loss much sooner).
RESTORE_VISIBLE_EVERY = 30.0
#: Messages decoded from the session queues: JSON only (a pickle put on a queue is never loaded).
ACCEPT = prepare_accept_content(["json"])

#: KEYS: [1] kombu's ``unacked`` hash, [2] its index, then the lists to take from, in order. ARGV:
#: [1] now (unix time). Takes the first message of the first list that has one and records it as
#: unacknowledged exactly as kombu's Redis ``QoS.append`` does (the index scored by the time, the
#: hash holding ``[message, exchange, routing key]``), in one round trip instead of a pop and a
#: ``MULTI``; returns ``{list, message, delivery tag}``, or nothing if every list is empty. A
#: message that is not kombu's JSON is returned unrecorded (no tag), for the loop to drop.
TAKE = """
for i = 3, #KEYS do
  local raw = redis.call('RPOP', KEYS[i])
  if raw then
    local ok, message = pcall(cjson.decode, raw)
    local properties = ok and type(message) == 'table' and message['properties']
    local info = type(properties) == 'table' and properties['delivery_info']
    local tag = type(properties) == 'table' and properties['delivery_tag']
    if type(info) ~= 'table' or type(tag) ~= 'string' then return {KEYS[i], raw} end
    local route = cjson.encode(info['exchange'] or '') .. ',' .. cjson.encode(info['routing_key'] or '')
    redis.call('ZADD', KEYS[2], ARGV[1], tag)
    redis.call('HSET', KEYS[1], tag, '[' .. raw .. ',' .. route .. ']')
    return {KEYS[i], raw, tag}
  end
end
return false
"""


#: A message taken: its list, its body, and its delivery tag if the take recorded it as unacknowledged.
_Taken = tuple[bytes, bytes, str | None]


class Scheduler:
    """Takes messages for the ready sessions of one host; see the module docstring."""

    def __init__(self, app: Celery, redis_url: str, waker: redis.Redis, hostname: str, threads: int) -> None:
        self.app = app
        self.hostname = hostname
        self.threads = threads
        self.wake_key = redis_keys.host_wake(hostname)
        self._wake_key = self.wake_key.encode()
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
        self._keys: dict[str, list[bytes]] = {}
        #: Each admitted session's lists, to the session.
        self._owner: dict[bytes, str] = {}
        #: Sessions whose readiness may have changed since the loop last looked.
        self._dirty: set[str] = set()
        #: The admitted sessions ready now, in the order they get the next chance (one that took a
        #: message leaves, and comes back at the end: round robin).
        self._ready: dict[str, SessionRunner] = {}
        #: (monotonic time, session): when a session that was not ready yet may be (stale entries
        #: are looked at and dropped).
        self._timers: list[tuple[float, str]] = []
        #: When the loop looks at every session again (monotonic).
        self._everyone_at = 0.0
        #: The BRPOP's keys for the ready set (rebuilt only when that set changes).
        self._brpop_keys: list[bytes] | None = None
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        #: True while the loop is (about to be) blocked: only then does a wake need a Redis write.
        self._blocking = False
        #: The last look found a message: the next one first tries to take without blocking (one
        #: script that also records the message), as a backlog is likely still there.
        self._busy_lists = False
        self._stop = threading.Event()
        self._retry_in = 1.0
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._take = waker.register_script(TAKE)

    # Called by the host ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages; wait for the sends in flight; close the broker connection (kombu
        puts back any message still unacknowledged)."""
        self._stop.set()
        with self._lock:
            self._idle.notify_all()
        self.wake()
        self._thread.join(timeout=timeout)
        self._pool.shutdown(wait=True)

    def add(self, runner: SessionRunner) -> None:
        runner.wake = lambda: self.touch(runner.session_id)
        with self._lock:
            self._runners[runner.session_id] = runner
            self._new.add(runner.session_id)
        self.wake()

    def remove(self, session_id: str) -> None:
        """Take nothing more for ``session_id`` (the runner waits for its own send in flight)."""
        with self._lock:
            self._runners.pop(session_id, None)
            self._new.discard(session_id)
            for key in self._keys.pop(session_id, ()):
                self._owner.pop(key, None)
            if self._ready.pop(session_id, None) is not None:
                self._brpop_keys = None
        self.wake()

    def touch(self, session_id: str) -> None:
        """``session_id``'s readiness may have changed: look at it again (and end the loop's wait)."""
        with self._lock:
            self._dirty.add(session_id)
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
                self._owner.clear()
                self._ready.clear()
                self._timers.clear()
                self._brpop_keys = None
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
                    self._owner.update(dict.fromkeys(self._keys[session_id], session_id))
                    self._dirty.add(session_id)
        for session_id, count in restored.items():
            log.warning(
                "session %s: %d unacknowledged message(s) of a previous host put back on its queue",
                session_id,
                count,
                extra={"session_id": session_id},
            )

    def _plan(self, now: float) -> float:
        """Bring the ready set up to date at ``now`` (monotonic): the sessions marked since the last
        look, those whose timer is due, and every ``MAX_WAIT_SECONDS`` all of them; return how long
        the loop may wait before it has to look again."""
        with self._lock:
            if now >= self._everyone_at:
                self._dirty.update(self._keys)
                self._everyone_at = now + MAX_WAIT_SECONDS
            while self._timers and self._timers[0][0] <= now:
                self._dirty.add(heapq.heappop(self._timers)[1])
            dirty, self._dirty = self._dirty, set()
            for session_id in dirty:
                runner = self._runners.get(session_id)
                ready_in = runner.ready_in(now) if runner is not None and session_id in self._keys else None
                if ready_in is not None and ready_in <= 0:
                    if session_id not in self._ready:
                        self._ready[session_id] = runner  # type: ignore[assignment]
                        self._brpop_keys = None
                    continue
                if self._ready.pop(session_id, None) is not None:
                    self._brpop_keys = None
                if ready_in is not None:
                    heapq.heappush(self._timers, (now + ready_in, session_id))
            if len(self._timers) > 4 * len(self._keys) + 64:
                # Sessions re-timed many times leave stale entries: keep the heap to its live ones.
                self._timers = [(at, sid) for at, sid in self._timers if sid in self._keys]
                heapq.heapify(self._timers)
            due = min(self._timers[0][0], self._everyone_at) if self._timers else self._everyone_at
            return max(0.0, due - now)

    def _take_one(self, channel: Any, reader: redis.Redis) -> None:
        """Wait for one message of a ready session (or a wake, or the next timer) and hand it on."""
        self._blocking = True
        wait = self._plan(time.monotonic())
        with self._lock:
            if self._in_flight >= self.threads:
                # Every send thread busy: nothing can be taken before one finishes, which notifies
                # here, in the process; the wakes meanwhile need no Redis write.
                self._blocking = False
                if not self._stop.is_set():
                    self._idle.wait(timeout=wait)
                return
            if self._brpop_keys is None:
                self._brpop_keys = [key for sid in self._ready for key in self._keys[sid]] + [self._wake_key]
            keys = self._brpop_keys
        taken = self._take_recorded(channel, reader, keys) if self._busy_lists else None
        if taken is None:
            taken = self._wait_for_one(reader, keys, wait)
        self._blocking = False
        self._busy_lists = taken is not None
        if taken is not None:
            self._hand_on(channel, reader, *taken)

    def _take_recorded(self, channel: Any, reader: redis.Redis, keys: list[bytes]) -> _Taken | None:
        """The first message of ``keys`` (the wake list aside) without blocking, with its delivery
        tag as it was recorded unacknowledged (see :data:`TAKE`); None if there is none."""
        lists = keys[:-1]
        if not lists:
            return None
        taken = self._take(
            keys=[channel.unacked_key, channel.unacked_index_key, *lists], args=[time.time()], client=reader
        )
        if not taken:
            return None
        return taken[0], taken[1], taken[2].decode() if len(taken) > 2 else None

    def _wait_for_one(self, reader: redis.Redis, keys: list[bytes], wait: float) -> _Taken | None:
        """Block until a message of ``keys`` comes (not recorded yet), a wake, or ``wait`` ends."""
        # A wait shorter than Redis' timeout resolution would return at once: BRPOP's 0 means forever.
        popped = reader.brpop(keys, timeout=max(wait, 0.01))
        if popped is None:
            return None
        key, raw = cast("tuple[bytes, bytes]", popped)  # the reader does not decode
        if key != self._wake_key:
            return key, raw, None
        reader.delete(self._wake_key)  # the other wakes it holds are answered by this one
        # Gather what else changes for a moment before the next BRPOP, in proportion to what it costs
        # to send: thousands of sessions connecting at once would otherwise cost one BRPOP over tens
        # of thousands of keys each.
        self._stop.wait(min(COALESCE_MAX_SECONDS, COALESCE_SECONDS_PER_KEY * len(keys)))
        return None

    def _hand_on(self, channel: Any, reader: redis.Redis, key: bytes, raw: bytes, recorded_tag: str | None) -> None:
        """Give the message ``raw`` taken from ``key`` to its session's send thread, recorded as
        unacknowledged as kombu records it (``recorded_tag``: the take already wrote that record)."""
        try:
            message = channel.Message(json.loads(raw), channel=channel)
        except Exception:
            log.error("a malformed message on %r was dropped: %.200r", key, raw)
            if recorded_tag is not None:
                channel.qos.ack(recorded_tag)
            return
        with self._lock:
            session_id = self._owner.get(key)
            runner = self._ready.get(session_id) if session_id is not None else None
        if runner is None or runner.ready_in(time.monotonic()) is None:
            # Removed or stopping while the read was on the way: back at the head of its list, as
            # if never taken.
            pipe = reader.pipeline()
            pipe.rpush(key, raw)
            if recorded_tag is not None:
                pipe.zrem(channel.unacked_index_key, recorded_tag)
                pipe.hdel(channel.unacked_key, recorded_tag)
            pipe.execute()
            return
        message.accept = ACCEPT
        if recorded_tag is None:
            channel.qos.append(message, message.delivery_tag)  # recorded as unacknowledged, as kombu does
        else:
            virtual.QoS.append(channel.qos, message, recorded_tag)  # kombu's in-memory record only
        runner.busy = True
        with self._lock:
            self._in_flight += 1
            # Round robin: the session served leaves the ready set, and comes back at its end.
            self._ready.pop(runner.session_id, None)
            self._brpop_keys = None
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
                self._dirty.add(runner.session_id)
                self._idle.notify_all()
            self.wake()

    def _wait_idle(self) -> None:
        with self._lock:
            while self._in_flight:
                self._idle.wait()


def _share_client(channel: Any) -> None:
    """Give ``channel`` one redis-py client for all its commands: the one it opened its connection
    with. kombu's Redis channel builds a new client object for every record and acknowledgement of
    a message (a tenth of the host's CPU per message), over a second connection pool besides the
    one it pings with; a client is thread-safe, so one serves them all over one connection."""
    shared = channel.client
    channel._create_client = lambda asynchronous=False: shared


def _priority_keys(channel: Any, queue: str) -> list[bytes]:
    """The Redis lists of one queue, highest priority first, named as kombu's Redis transport names
    them (``broker_transport_options`` in celeryconfig.py); encoded once, as the BRPOP sends them
    again and again."""
    return [channel._q_for_pri(queue, pri).encode() for pri in channel.priority_steps]
