"""A fix for kombu's Redis transport (kombu 5.7.0) that otherwise kills the Celery worker when
Redis goes away while the worker holds unacknowledged tasks.

What happens without it: Celery's consumer, on losing the broker, first ``collect()``s the
connection, then ``close()``s it. ``collect()`` closes the default channel: a BRPOP is in flight,
so ``Channel.close`` re-reads it, gets the connection error, and stops before marking the channel
closed; the error is swallowed, and the transport's back-reference to the connection is cleared.
``close()`` then closes the channel again, this time far enough to drop its connection pools and to
restore the unacknowledged tasks, which needs a new pool, built from the connection's parameters,
which are gone: ``AttributeError: 'NoneType' object has no attribute 'hostname'``. That is not a
connection error, so nothing swallows it, and the worker stops with "Unrecoverable error"
(seen in the Redis restart drill, tests/integration/test_drills.py).

The fix: a channel whose connection is gone raises the connection error it is, which kombu and
Celery already handle (the tasks stay in Redis' unacknowledged set; they come back after the
visibility timeout, and the sweeper republishes their messages long before).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_original_connparams = kombu_redis.Channel._connparams


def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> Any:
    transport = self.connection
    if transport is None or transport.client is None:
        raise redis.exceptions.ConnectionError("the broker connection was closed")
    return _original_connparams(self, asynchronous=asynchronous)


def apply() -> None:
    """Install the fix (idempotent); ``wa_tasks.infra.celery_app`` does on import, so every process that
    talks to the broker through Celery or kombu has it."""
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
