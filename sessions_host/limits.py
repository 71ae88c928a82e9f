"""Redis-side guards that hold across every session host: a session's pacing slot and each
recipient's hourly cap. Time comes from Redis (``TIME``), so hosts with skewed clocks still agree,
and each check-and-reserve is one atomic Lua script.

The host paces itself first (``pacing.Pacer``); these guards are what keeps two hosts that
overlap on a session (after a failover) from doubling its rate, and a buggy caller from flooding
one customer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import redis

from sessions_host import leases
from wa_tasks.core import redis_keys
from wa_tasks.infra import redis_client

#: KEYS: [1] the session's pace slot key, [2] the session's lease, [3] the caller's host lease.
#: ARGV: [1] interval in ms, [2] the lease value the caller holds ("" = no lease check).
#: Returns 0 when the slot is granted now (and reserves the next one), -1 when the caller no longer
#: holds the lease or its host lease expired (fencing: it must not send), else the ms to wait.
PACE_SLOT = """
if ARGV[2] ~= '' and (redis.call('GET', KEYS[2]) ~= ARGV[2] or redis.call('EXISTS', KEYS[3]) == 0) then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_free > now then
  return next_free - now
end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], now + interval, 'PX', interval + 60000)
return 0
"""


class LeaseLost(RuntimeError):
    """The session's lease moved to another host: this one must not send."""


@dataclass
class Limits:
    """The Redis guards of one host (thread-safe: redis-py pools connections)."""

    client: redis.Redis

    def __post_init__(self) -> None:
        self._pace = self.client.register_script(PACE_SLOT)
        self._recipient = self.client.register_script(redis_client.SLIDING_WINDOW)

    def pace_slot(self, session_id: str, interval_seconds: float, lease: str = "") -> float:
        """0.0 if ``session_id`` may send now (the slot is taken), else seconds to wait; raises
        :class:`LeaseLost` if ``lease`` is given and no longer held."""
        host_lease = redis_keys.host_lease(leases.holder(lease)) if lease else ""
        wait_ms = int(
            self._pace(
                keys=[redis_keys.pace_slot(session_id), redis_keys.lease(session_id), host_lease],
                args=[max(1, int(interval_seconds * 1000)), lease],
            )
        )
        if wait_ms < 0:
            raise LeaseLost(f"session {session_id}: this host no longer holds its lease")
        return wait_ms / 1000.0

    def wait_for_slot(self, session_id: str, interval_seconds: float, stop: threading.Event, lease: str = "") -> bool:
        """Block until the session's slot is granted; False if ``stop`` was set meanwhile."""
        while not stop.is_set():
            wait = self.pace_slot(session_id, interval_seconds, lease)
            if wait <= 0:
                return True
            stop.wait(wait)
        return False

    def recipient_send(self, number: str, message_id: str, cap: int, window_seconds: float = 3600.0) -> float:
        """0.0 if one more message to ``number`` stays within ``cap`` per window (and counts it),
        else seconds until it would."""
        if cap <= 0:
            return 0.0
        wait_ms = int(
            self._recipient(
                keys=[redis_keys.recipient_window(number)], args=[int(window_seconds * 1000), cap, message_id]
            )
        )
        return wait_ms / 1000.0
