"""One redis-py client per URL per process (thread-safe connection pool), and the reading of
kombu's bookkeeping of unacknowledged messages on the Redis broker."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import redis

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}

#: A sliding-window count on Redis' clock, shared by every process: the session host's cap of
#: sends per recipient and the web process' rate limit per API key.
#: KEYS: [1] the window (a sorted set of the counted times in ms).
#: ARGV: [1] window length in ms, [2] the limit, [3] a unique member for this one.
#: Returns 0 when it is within the limit (and counts it), else the ms until one frees (at least 1).
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


#: How every client of :func:`client_for` and :func:`bounded` talks to Redis.
_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    "health_check_interval": 30,
}


def client_for(url: str) -> redis.Redis:
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis.Redis.from_url(url, **_OPTIONS)
        return client


def bounded(url: str, connections: int) -> redis.Redis:
    """Make this process's client for ``url`` one that holds at most ``connections`` connections
    (a thread that finds them all busy waits for one): for a process whose threads all talk to
    Redis, so that its connection count stays the same whatever its load. A connection held by a
    subscription counts."""
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=connections, timeout=20, **_OPTIONS)
    client = redis.Redis(connection_pool=pool)
    use(url, client)
    return client


def use(url: str, client: redis.Redis) -> None:
    """Make :func:`client_for` answer ``client`` for ``url`` in this process: how the in-process
    tests (``tests/support/inproc.py``) put a fake Redis under code that reads its URL from the settings."""
    with _lock:
        _clients[(os.getpid(), url)] = client


def forget(url: str) -> None:
    """Drop this process's client for ``url`` (the next :func:`client_for` makes a new one)."""
    with _lock:
        _clients.pop((os.getpid(), url), None)


def database_of(client: redis.Redis) -> int:
    """The database number ``client`` uses (for names that Redis does not keep per database)."""
    return int(client.connection_pool.connection_kwargs.get("db", 0))


def unacked(channel: Any) -> Iterator[tuple[str, str, str]]:
    """``(delivery tag, exchange, routing key)`` of each message a consumer took from the broker and
    has not acknowledged: kombu's Redis transport keeps them in the ``unacked`` hash of ``channel``
    (a kombu Redis channel) until the ack, or until a restore puts them back on their queue. A
    session queue's name is its routing key (or its exchange); entries that do not parse are skipped."""
    for tag, raw in channel.client.hscan_iter(channel.unacked_key):
        try:
            _message, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        # kombu's client answers bytes: the tag goes back to ``restore_by_tag`` as kombu wrote it
        yield _text(tag), str(exchange), str(routing_key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
