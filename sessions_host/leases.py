"""Session leases: each session is owned by exactly one session host at a time.

A host owns a session while it holds ``wa:lease:<id>`` in Redis (``host|token``) **and** its own host
lease ``wa:host:<name>:lease`` exists: one key with a TTL per host, which its heartbeat renews, so an
idle host's cost does not grow with its sessions (renewing a TTL per session cost a thousand Redis
commands a second for a thousand sessions). The token is a fencing counter that only grows, and
every send checks the lease and the host lease atomically with the session's pace slot
(``limits.PACE_SLOT``): a host that was paused past its TTL cannot send, even before it notices.
When a host dies, its host lease expires and the other hosts take its sessions over (each up to its
fair share). A session lease has no TTL of its own: the lease of a session removed while its host
was dead stays behind as one small key, like the session's fencing counter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from wa_tasks.core import redis_keys

#: KEYS: [1] the lease, [2] the session's fencing counter, [3] the host lease of the holder read
#: before the call (this host's own when nobody held it).
#: ARGV: [1] this host's name, [2] the lease's value read before the call ("" = none).
#: Returns the fencing token this host holds (existing or new), or 0 if a live host holds it or the
#: lease changed since it was read (the next heartbeat tries again).
ACQUIRE = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[2] then
  return 0
end
if current ~= '' then
  local sep = string.find(current, '|', 1, true)
  if sep and string.sub(current, 1, sep - 1) == ARGV[1] then
    return tonumber(string.sub(current, sep + 1))
  end
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return 0
  end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token)
return token
"""

#: KEYS: [1] the lease. ARGV: [1] the value held. Deletes it only if still held.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def holder(value: str) -> str:
    """The host named in a lease's value (``host|token``)."""
    return value.split("|", 1)[0]


@dataclass(frozen=True)
class Lease:
    session_id: str
    host: str
    token: int

    @property
    def value(self) -> str:
        return f"{self.host}|{self.token}"


class Leases:
    def __init__(self, client: redis.Redis, host: str, ttl_seconds: float) -> None:
        self.client = client
        self.host = host
        self.ttl_ms = int(ttl_seconds * 1000)
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)

    def renew(self) -> bool:
        """Renew this host's lease (every session lease it holds lives by it) and its place among the
        live hosts, in one round trip. False if the host lease had expired (or this is the first
        heartbeat): another host may have taken any of its sessions meanwhile (see :meth:`lost`)."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(redis_keys.host_lease(self.host), now, px=self.ttl_ms, get=True)
        pipe.zadd(redis_keys.HOSTS, {self.host: now})
        pipe.zremrangebyscore(redis_keys.HOSTS, "-inf", now - self.ttl_ms / 1000.0)
        previous, *_ = pipe.execute()
        return previous is not None

    def lost(self, leases: Sequence[Lease], expired: bool) -> dict[Lease, str | None]:
        """Which of ``leases`` this host must stop serving, each with the host that holds it now (None:
        nobody does, or it is still this host's but the host lease ``expired`` in between, so the
        session starts again under a checked lease). One round trip."""
        if not leases:
            return {}
        values = self._values([lease.session_id for lease in leases])
        gone: dict[Lease, str | None] = {}
        for lease, value in zip(leases, values, strict=True):
            if value is None:
                gone[lease] = None
            elif value != lease.value:
                gone[lease] = holder(value)
            elif expired:
                gone[lease] = None
        return gone

    def acquire(self, session_id: str) -> Lease | None:
        """Take the session's lease if nobody holds it or its holder's host lease has expired (or
        this host holds it already); None if a live host holds it."""
        current = self._values([session_id])[0] or ""
        token = int(
            self._acquire(
                keys=[
                    redis_keys.lease(session_id),
                    redis_keys.lease_fence(session_id),
                    redis_keys.host_lease(holder(current) or self.host),
                ],
                args=[self.host, current],
            )
        )
        return Lease(session_id, self.host, token) if token else None

    def takeable(self, session_ids: Sequence[str]) -> list[str]:
        """Those of ``session_ids`` whose lease this host could take now: nobody holds it, its holder's
        host lease expired, or this host holds it. Two round trips for any number of sessions, so a
        host looking for its share among thousands does not try each one."""
        values = self._values(session_ids)
        holders = sorted({holder(v) for v in values if v} - {self.host})
        live = set()
        if holders:
            exists = self.client.mget([redis_keys.host_lease(h) for h in holders])
            live = {h for h, e in zip(holders, exists, strict=True) if e is not None}
        return [s for s, v in zip(session_ids, values, strict=True) if not v or holder(v) not in live]

    def release(self, lease: Lease) -> None:
        self._release(keys=[redis_keys.lease(lease.session_id)], args=[lease.value])

    def owner(self, session_id: str) -> str | None:
        """The host named in the session's lease (whether or not that host is still alive)."""
        return self.owners([session_id])[0]

    def owners(self, session_ids: Sequence[str]) -> list[str | None]:
        """:meth:`owner` of each of ``session_ids``, in one round trip."""
        return [holder(v) if v else None for v in self._values(session_ids)]

    def _values(self, session_ids: Sequence[str]) -> list[str | None]:
        """The value (``host|token``) of each session's lease, None where there is none, in one
        round trip (as text whether or not the client decodes its replies)."""
        if not session_ids:
            return []
        raw = self.client.mget([redis_keys.lease(s) for s in session_ids])
        return [v.decode() if isinstance(v, bytes) else v for v in raw]

    # Hosts, for a fair share of the sessions ------------------------------------------------------

    def leave(self) -> None:
        """Leave the live hosts: what this host still holds may be taken at once."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(redis_keys.HOSTS, self.host)
        pipe.delete(redis_keys.host_lease(self.host))
        pipe.execute()

    def hosts(self) -> list[str]:
        """The live hosts (heartbeat within the lease TTL)."""
        return [str(h) for h in self.client.zrangebyscore(redis_keys.HOSTS, time.time() - self.ttl_ms / 1000.0, "+inf")]

    def fair_share(self, sessions: int) -> int:
        """How many sessions this host should own: all of them divided among the live hosts."""
        hosts = max(1, len(self.hosts()))
        return math.ceil(sessions / hosts) if sessions else 0
