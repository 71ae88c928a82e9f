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
from dataclasses import dataclass

import redis

from wa_tasks import keys

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

#: KEYS: [1] the lease. ARGV: [1] the value held ("host|token"), [2] TTL in ms.
#: Returns 1 if renewed, 0 if the lease is no longer this value.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

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
            self._acquire(keys=[keys.lease(session_id), keys.lease_fence(session_id)], args=[self.host, self.ttl_ms])
        )
        return Lease(session_id, self.host, token) if token else None

    def renew(self, lease: Lease) -> bool:
        return bool(self._renew(keys=[keys.lease(lease.session_id)], args=[lease.value, self.ttl_ms]))

    def release(self, lease: Lease) -> None:
        self._release(keys=[keys.lease(lease.session_id)], args=[lease.value])

    def owner(self, session_id: str) -> str | None:
        value = self.client.get(keys.lease(session_id))
        return str(value).split("|", 1)[0] if value else None

    # Hosts, for a fair share of the sessions ------------------------------------------------------

    def heartbeat(self) -> None:
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(keys.HOSTS, {self.host: now})
        pipe.zremrangebyscore(keys.HOSTS, "-inf", now - self.ttl_ms / 1000.0)
        pipe.execute()

    def leave(self) -> None:
        self.client.zrem(keys.HOSTS, self.host)

    def hosts(self) -> list[str]:
        """The live hosts (heartbeat within the lease TTL)."""
        return [str(h) for h in self.client.zrangebyscore(keys.HOSTS, time.time() - self.ttl_ms / 1000.0, "+inf")]

    def fair_share(self, sessions: int) -> int:
        """How many sessions this host should own: all of them divided among the live hosts."""
        hosts = max(1, len(self.hosts()))
        return math.ceil(sessions / hosts) if sessions else 0
