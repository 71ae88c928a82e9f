"""Live session state in Redis: written by the session host that owns a session whenever it changes
(status, ban safety's availability), read by ``dispatch`` to route. A state counts while its host
reports itself live (``report_host``, on every heartbeat: one key a host, whatever its sessions), so
a dead host's sessions stop receiving messages within ``WA_LIVE_STATE_TTL_SECONDS``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from models.statuses import SessionStatus
from wa_tasks.core import redis_keys


@dataclass(frozen=True)
class LiveState:
    session_id: str
    status: str
    host: str
    #: Unix time (host clock) of the report.
    reported_at: float
    #: When the current status began (unix time).
    since: float
    #: Out of rotation until then (ban safety: a cap reached or a WhatsApp restriction).
    available_until: float = 0.0
    #: Takes no new contacts until then (its daily new-contact budget is spent).
    new_contacts_until: float = 0.0

    @property
    def connected(self) -> bool:
        return self.status == SessionStatus.CONNECTED

    def usable(self, now: float) -> bool:
        """Connected and in rotation."""
        return self.connected and self.available_until <= now


def report_host(client: redis.Redis, host: str, ttl_seconds: float) -> bool:
    """Renew ``host``'s live report: the states it wrote count for ``ttl_seconds`` more. False if
    they had stopped counting (or never did): the host writes them all again."""
    return client.set(redis_keys.host_live(host), 1, px=int(ttl_seconds * 1000), get=True) is not None


def publish(client: redis.Redis, state: LiveState) -> None:
    publish_many(client, [state])


def publish_many(client: redis.Redis, states: Iterable[LiveState]) -> None:
    """Write several sessions' live states in one round trip."""
    pipe = client.pipeline(transaction=False)
    for state in states:
        _write(pipe, state)
    pipe.execute()


def _write(pipe: Any, state: LiveState) -> None:
    key = redis_keys.live_state(state.session_id)
    pipe.hset(
        key,
        mapping={
            "status": state.status,
            "host": state.host,
            "reported_at": state.reported_at,
            "since": state.since,
            "available_until": state.available_until,
            "new_contacts_until": state.new_contacts_until,
        },
    )


def clear(client: redis.Redis, session_id: str) -> None:
    client.delete(redis_keys.live_state(session_id))


def read(client: redis.Redis, session_ids: Iterable[str]) -> dict[str, LiveState]:
    """The live states of ``session_ids`` whose host reports itself live (absent = down). Two round
    trips: the states, then whether each of their hosts is live."""
    ids = list(session_ids)
    if not ids:
        return {}
    pipe = client.pipeline(transaction=False)
    for session_id in ids:
        pipe.hgetall(redis_keys.live_state(session_id))
    found = [(session_id, raw) for session_id, raw in zip(ids, pipe.execute(), strict=True) if raw]
    hosts = sorted({raw.get("host", "?") for _, raw in found})
    pipe = client.pipeline(transaction=False)
    for host in hosts:
        pipe.exists(redis_keys.host_live(host))
    live = {host for host, exists in zip(hosts, pipe.execute(), strict=True) if exists}
    states = {}
    for session_id, raw in found:
        if raw.get("host", "?") in live:
            states[session_id] = LiveState(
                session_id=session_id,
                status=raw.get("status", SessionStatus.DISCONNECTED),
                host=raw.get("host", "?"),
                reported_at=float(raw.get("reported_at", 0)),
                since=float(raw.get("since", 0)),
                available_until=float(raw.get("available_until", 0)),
                new_contacts_until=float(raw.get("new_contacts_until", 0)),
            )
    return states


def now() -> float:
    return time.time()


#: Redis priority steps of a queue: kombu keeps one list per step (``name``, ``name:1`` … ``name:9``).
PRIORITY_STEPS = 10


def step_lengths(client: redis.Redis, queues: Iterable[str], steps: int = PRIORITY_STEPS) -> dict[str, list[int]]:
    """Messages waiting on each queue, per priority step (index 0 is the highest), in one round trip."""
    names = list(queues)
    pipe = client.pipeline(transaction=False)
    for name in names:
        for step in range(steps):
            pipe.llen(name if step == 0 else f"{name}:{step}")
    lengths = [int(n) for n in pipe.execute()]
    return {name: lengths[i * steps : (i + 1) * steps] for i, name in enumerate(names)}


def backlogs(client: redis.Redis, queues: Iterable[str], steps: int = PRIORITY_STEPS) -> dict[str, int]:
    """Messages waiting on each queue, over its first ``steps`` priority lists (all by default): with
    ``steps = p + 1``, the messages a new one of priority ``p`` waits behind."""
    return {name: sum(per_step) for name, per_step in step_lengths(client, queues, steps).items()}


def ready_in(client: redis.Redis, session_ids: Iterable[str]) -> dict[str, float]:
    """Seconds until each session's shared pace slot opens (0 when open), on Redis' clock."""
    ids = list(session_ids)
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for sid in ids:
        pipe.get(redis_keys.pace_slot(sid))
    (seconds, micros), *slots = pipe.execute()
    now_ms = seconds * 1000 + micros / 1000
    return {sid: max(0.0, (float(slot) - now_ms) / 1000) if slot else 0.0 for sid, slot in zip(ids, slots, strict=True)}


def new_contact_refusers(client: redis.Redis, states: dict[str, LiveState], number: str, now: float) -> list[str]:
    """Sessions that would refuse ``number`` today: their new-contact budget is spent and they have
    never messaged it."""
    spent = [sid for sid, state in states.items() if state.new_contacts_until > now]
    if not spent:
        return []
    pipe = client.pipeline(transaction=False)
    for sid in spent:
        pipe.sismember(redis_keys.session_contacts(sid), number)
    return [sid for sid, known in zip(spent, pipe.execute(), strict=True) if not known]
