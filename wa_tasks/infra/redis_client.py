"""One redis-py client per URL per process (thread-safe connection pool)."""

from __future__ import annotations

import os
import threading

import redis

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def client_for(url: str) -> redis.Redis:
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
            )
        return client


def database_of(client: redis.Redis) -> int:
    """The database number ``client`` uses (for names that Redis does not keep per database)."""
    return int(client.connection_pool.connection_kwargs.get("db", 0))
