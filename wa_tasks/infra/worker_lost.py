"""The tasks a dead worker held, back on their queue within seconds rather than an hour.

Every task is acknowledged after it ran (``task_acks_late``), so a worker process that dies (SIGKILL,
out of memory, power loss) leaves the messages it held in the broker's unacknowledged set. Redis'
transport gives them back only after the visibility timeout (an hour); ``task_reject_on_worker_lost``
does not apply, as it covers a prefork child that dies under a living parent, and the worker's pool is
threads. A bulk's batch held by a killed worker so sat ``queued`` until the sweeper's next pass.

So each worker process (``celery worker``; nothing else loads these signal handlers):

- keeps ``wa:worker:<id>:alive`` while it runs: a TTL of ``WA_LEASE_TTL_SECONDS``, renewed every
  ``WA_HEARTBEAT_SECONDS`` (the id is its node name and a part new on every start, so a worker
  restarted under the same name is not taken for the one that died);
- records each task message it receives (``wa:worker:held``: delivery tag → id) and forgets it once
  the task has run;
- every heartbeat, puts back each message held by a worker whose key expired, at the front of its
  queue as kombu does after the visibility timeout, and forgets records of messages that are no
  longer unacknowledged. One process does so at a time (``wa:worker:restoring``), reading the records
  once it holds that claim, so a message is put back once even when several workers look.

A worker starts putting messages back only after it has renewed its own key for a whole TTL: after
Redis was unreachable (every key may have expired meanwhile) the others have renewed theirs by then.
Running a task again is what acknowledging late already accepts: ``dispatch`` and ``dispatch_batch``
route only ``queued`` rows and publish each deliver before the conditional route, the session host's
claim is conditional, and ``wa.send``/``wa.notify`` are idempotent by task id. A worker too starved
to renew its key for a TTL is taken for dead, and its tasks then run twice: harmless for the same
reasons.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from typing import Any

from celery import Celery, signals

from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: KEYS: [1] a hash. ARGV: [1] field, [2] value. Deletes the field only if it still has that value
#: (a message put back and received by another worker meanwhile is recorded as that worker's).
FORGET = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

#: KEYS: [1] a string. ARGV: [1] value. Deletes it only if it still has that value.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Watch:
    """One worker process' liveness, the task messages it holds, and the restoring of dead ones'."""

    def __init__(self, app: Celery, settings: Settings, node: str) -> None:
        self.app = app
        self.id = f"{node}:{uuid.uuid4().hex[:8]}"
        self.redis = client_for(settings.redis)
        self.ttl_ms = max(1000, int(settings.lease_ttl_seconds * 1000))
        self.every = settings.heartbeat_seconds
        #: Task id → delivery tag of the messages received and not yet run.
        self._tags: dict[str, str] = {}
        #: Since when (monotonic) every renewal of this process' key succeeded; None after a failure.
        self._up_since: float | None = None
        self._forget = self.redis.register_script(FORGET)
        self._release = self.redis.register_script(RELEASE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-lost", daemon=True)

    def start(self) -> None:
        self.beat()  # alive before the first message arrives
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        try:
            self.redis.set(redis_keys.worker_alive(self.id), "1", px=self.ttl_ms)
        except Exception as exc:
            self._up_since = None
            log.warning("worker liveness not renewed: %s", exc)
            return
        if self._up_since is None:
            self._up_since = time.monotonic()

    def received(self, task_id: str, tag: str) -> None:
        self._tags[task_id] = tag
        self.redis.hset(redis_keys.WORKER_HELD, tag, self.id)

    def ran(self, task_id: str) -> None:
        tag = self._tags.pop(task_id, None)
        if tag is not None:
            self._forget(keys=[redis_keys.WORKER_HELD], args=[tag, self.id])

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.beat()
            if self._up_since is None or time.monotonic() - self._up_since < self.ttl_ms / 1000.0:
                continue
            try:
                self.restore_lost()
            except Exception as exc:
                log.warning("could not put back the tasks of stopped workers: %s", exc)

    def restore_lost(self) -> int:
        """Put back on their queues the messages held by workers that stopped renewing their key;
        returns how many."""
        if not self.redis.set(redis_keys.WORKER_RESTORING, self.id, nx=True, px=self.ttl_ms):
            return 0  # another worker is at it
        restored: Counter[str] = Counter()
        try:
            held = {str(k): str(v) for k, v in self.redis.hgetall(redis_keys.WORKER_HELD).items()}
            if not held:
                return 0
            workers = sorted(set(held.values()))
            pipe = self.redis.pipeline(transaction=False)
            for worker in workers:
                pipe.exists(redis_keys.worker_alive(worker))
            alive = {worker for worker, found in zip(workers, pipe.execute(), strict=True) if found}
            with self.app.connection_for_write() as conn:
                channel: Any = conn.default_channel
                pipe = channel.client.pipeline(transaction=False)
                for tag in held:
                    pipe.hexists(channel.unacked_key, tag)
                unacked = dict(zip(held, pipe.execute(), strict=True))
                for tag, worker in held.items():
                    if worker in alive and unacked[tag]:
                        continue  # held by a running worker
                    if unacked[tag]:
                        channel.qos.restore_by_tag(tag)
                        restored[worker] += 1
                    self._forget(keys=[redis_keys.WORKER_HELD], args=[tag, worker])
        finally:
            self._release(keys=[redis_keys.WORKER_RESTORING], args=[self.id])
        for worker, count in restored.items():
            log.warning(
                "worker %s stopped (no sign of life for %.0fs) holding %d task(s): put back on their queues",
                worker,
                self.ttl_ms / 1000.0,
                count,
            )
        return sum(restored.values())


#: This process' watch, once it runs as a worker.
_watch: Watch | None = None


@signals.celeryd_after_setup.connect
def _worker_started(sender: str, instance: Any, **_: Any) -> None:
    global _watch
    _watch = Watch(instance.app, get_settings(), sender)
    _watch.start()


@signals.task_received.connect
def _task_received(request: Any, **_: Any) -> None:
    if _watch is None:
        return
    try:
        _watch.received(request.id, request.message.delivery_tag)
    except Exception as exc:  # the task runs all the same; only its quick return after a crash is lost
        log.warning("task %s not recorded as held: %s", request.id, exc)


@signals.task_postrun.connect
def _task_ran(task_id: str, **_: Any) -> None:
    if _watch is None:
        return
    try:
        _watch.ran(task_id)
    except Exception as exc:
        log.debug("task %s not forgotten (the next pass does): %s", task_id, exc)
