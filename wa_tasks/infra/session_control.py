"""Operator commands to the session host that owns a session (``wa-tasks sessions pair|logout|…``,
the API, the health check): published on Redis, answered by the owning host within a timeout.

A session is owned by one host at a time (leases), so exactly one host acts on a command; if none
owns it, the caller gets a clear error instead of silence.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from wa_tasks.core import redis_keys
from wa_tasks.errors import CommandFailed, HostUnavailable
from wa_tasks.infra.redis_client import client_for, database_of
from wa_tasks.settings import Settings

#: What a session host can be asked to do.
ACTIONS = ("pair", "logout", "probe", "reconnect", "check_numbers")
#: How long the API and the pages wait for a session host to answer an operator's command.
COMMAND_TIMEOUT = 15.0


def request(
    settings: Settings, session_id: str, action: str, args: dict[str, Any] | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Ask the host owning ``session_id`` to do ``action``; returns its answer or raises CommandFailed."""
    if action not in ACTIONS:
        raise ValueError(f"unknown session action {action!r}; use one of {', '.join(ACTIONS)}")
    redis = client_for(settings.redis)
    request_id = uuid.uuid4().hex
    listeners = redis.publish(
        redis_keys.commands(database_of(redis)),
        json.dumps({"id": request_id, "session": session_id, "action": action, "args": args or {}}),
    )
    if not listeners:
        raise HostUnavailable("no session host is running: start one with `wa-tasks sessions` (or `wa-tasks up`)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = redis.get(redis_keys.command_reply(request_id))
        if raw:
            answer: dict[str, Any] = json.loads(raw)
            if not answer.get("ok"):
                raise CommandFailed(f"{action} on session {session_id} failed: {answer.get('error')}")
            return answer
        time.sleep(0.1)
    raise HostUnavailable(
        f"no session host answered {action} for session {session_id!r} within {timeout:.0f}s: "
        "is the session configured and connected to a running host (`wa-tasks sessions list`)?"
    )


def current_qr(settings: Settings, session_id: str) -> tuple[str, float] | None:
    """The QR code ``session_id`` shows now and when it expires (unix time), or None."""
    raw = client_for(settings.redis).hgetall(redis_keys.session_qr(session_id))
    if not raw or not raw.get("code"):
        return None
    return str(raw["code"]), float(raw.get("expires_at", 0))
