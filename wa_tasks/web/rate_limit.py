"""The per-key rate limit of the web process: a stored (scoped) API key may make at most
``WA_API_RATE_LIMIT_PER_MINUTE`` requests in any 60 seconds; the next one is answered 429 with a
``Retry-After``, in the shape its caller reads (``{"error": ..., "detail": ...}`` on the API,
``{"status": false, "reason": ...}`` on the drop-in endpoints).

Send-scoped keys are the ones pasted into billing apps' gateway URLs and RouterOS scripts, where
they leak into logs and browser history; the limit bounds what a leaked key can queue, on top of
ban safety, which bounds what is sent. The full ``WA_API_KEY`` (the operator's and the billing
codebase's, never in a URL) is not limited.

The window slides: a sorted set per key of the last minute's request times, trimmed and counted in
one Lua script on Redis' clock, so several web processes share one count. It is named by the key's
id (``wa_tasks/core/redis_keys.py``), never by the key itself, and expires a minute after the
key's last request. With Redis out of reach the request fails as any send would (503).
"""

from __future__ import annotations

import math
import uuid

from fastapi import HTTPException

from wa_tasks.core import redis_keys
from wa_tasks.infra import redis_client
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import Settings

#: The window the limit counts over, in milliseconds.
WINDOW_MS = 60_000


def wait_seconds(settings: Settings, key_id: str) -> float:
    """0.0 if the key with id ``key_id`` may make one more request now (and counts it), else the
    seconds until it may. No limit when ``WA_API_RATE_LIMIT_PER_MINUTE`` is 0."""
    limit = settings.api_rate_limit_per_minute
    if limit <= 0:
        return 0.0
    client = client_for(settings.redis)
    script = client.register_script(redis_client.SLIDING_WINDOW)
    wait_ms = int(script(keys=[redis_keys.api_rate(key_id)], args=[WINDOW_MS, limit, uuid.uuid4().hex]))
    return wait_ms / 1000.0


def enforce(settings: Settings, key_id: str) -> None:
    """Raise the 429 when the key with id ``key_id`` is over its limit; count the request otherwise."""
    wait = wait_seconds(settings, key_id)
    if wait <= 0:
        return
    retry_after = max(1, math.ceil(wait))
    raise HTTPException(
        status_code=429,
        detail=(
            f"rate limit: API key {key_id} made {settings.api_rate_limit_per_minute} requests in the last "
            f"minute, the limit (WA_API_RATE_LIMIT_PER_MINUTE); try again in {retry_after} s"
        ),
        headers={"Retry-After": str(retry_after)},
    )
