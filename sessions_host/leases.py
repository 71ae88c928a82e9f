"""Session leases: each session is owned by exactly one session host at a time.

A host owns a session while it holds ``wa:lease:<id>`` in Redis, a key with a TTL that its heartbeat
renews. The value carries a fencing token (a counter that only grows), and every send checks it
atomically with the session's pace slot (``limits.PACE_SLOT``): a host that was paused past its TTL
and lost the lease cannot send, even before it notices. When a host dies, its leases expire and the
other hosts take the sessions over (each taking up to its fair share of the sessions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from wa_tasks.core import redis_keys

#: KEYS: [1] the lease, [2] the session's fencing counter.
#: ARGV: [1] the host name, [2] TTL in ms.
#: Returns the fencing token held by this host (existing or new), or 0 if another host holds it.
ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and string.sub(current, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(current, sep + 1))
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

#: KEYS: [1..n] the leases of one host. ARGV: [1] TTL in ms, [2..n+1] the value held ("host|token")
#: of each lease, in the order of KEYS.
#: Returns n replies in that order: 1 renewed, 0 expired (nobody holds it), or the value another
#: host holds it with.
RENEW = """
local renewed = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    renewed[i] = 1
  elseif current then
    renewed[i] = current
  else
    renewed[i] = 0
  end
end
return renewed
"""

#: Leases renewed by one call of ``RENEW``: Redis runs a script without serving anyone else, so a
#: host with thousands of sessions renews them in a few short calls rather than one long one.
RENEW_BATCH = 500

#: KEYS: [1] the lease. ARGV: [1] the value held. Deletes it only if still held.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


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
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    def acquire(self, session_id: str) -> Lease | None:
        token = int(
            self._acquire(
                keys=[redis_keys.lease(session_id), redis_keys.lease_fence(session_id)], args=[self.host, self.ttl_ms]
            )
        )
        return Lease(session_id, self.host, token) if token else None

    def renew_all(self, leases: Sequence[Lease]) -> dict[Lease, str | None]:
        """Renew every lease in ``leases`` that this host still holds, in one script call per
        ``RENEW_BATCH``; return those it no longer holds, whose sessions it must stop serving, each
        with the host that holds it now (None: it expired and nobody took it, as when this host
        could not renew it in time: Redis unreachable, or the host paused)."""
        lost: dict[Lease, str | None] = {}
        for start in range(0, len(leases), RENEW_BATCH):
            batch = leases[start : start + RENEW_BATCH]
            renewed = self._renew(
                keys=[redis_keys.lease(lease.session_id) for lease in batch],
                args=[self.ttl_ms, *(lease.value for lease in batch)],
            )
            for lease, reply in zip(batch, renewed, strict=True):
                if isinstance(reply, bytes | str):
                    text = reply.decode() if isinstance(reply, bytes) else reply
                    lost[lease] = text.split("|", 1)[0]
                elif int(reply) != 1:
                    lost[lease] = None
        return lost

    def release(self, lease: Lease) -> None:
        self._release(keys=[redis_keys.lease(lease.session_id)], args=[lease.value])

    def owner(self, session_id: str) -> str | None:
        value = self.client.get(redis_keys.lease(session_id))
        return str(value).split("|", 1)[0] if value else None

    # Hosts, for a fair share of the sessions ------------------------------------------------------

    def heartbeat(self) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(redis_keys.HOSTS, {self.host: now})
        pipe.zremrangebyscore(redis_keys.HOSTS, "-inf", now - self.ttl_ms / 1000.0)
        pipe.execute()

    def leave(self) -> None:
        self.client.zrem(redis_keys.HOSTS, self.host)

    def hosts(self) -> list[str]:
        """The live hosts (heartbeat within the lease TTL)."""
        return [str(h) for h in self.client.zrangebyscore(redis_keys.HOSTS, time.time() - self.ttl_ms / 1000.0, "+inf")]

    def fair_share(self, sessions: int) -> int:
        """How many sessions this host should own: all of them divided among the live hosts."""
        hosts = max(1, len(self.hosts()))
        return math.ceil(sessions / hosts) if sessions else 0
