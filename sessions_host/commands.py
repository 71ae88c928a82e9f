"""Operator commands arriving at a session host (``wa_tasks.infra.session_control`` sends them): pair by
phone code, log out, probe the connection, reconnect. Only the host that owns the session acts;
each command runs on a thread of its own so a slow transport never blocks the listener."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from sessions_host.transports.base import SessionError
from wa_tasks.core import redis_keys
from wa_tasks.core.phone import normalize
from wa_tasks.errors import WaTasksError
from wa_tasks.infra.redis_client import database_of

log = logging.getLogger(__name__)

#: How long an answer waits in Redis for its caller.
REPLY_TTL_SECONDS = 120


class CommandListener:
    def __init__(
        self, client: redis.Redis, runners: Callable[[], dict[str, Any]], restart: Callable[[str], None], region: str
    ) -> None:
        self.client = client
        self.runners = runners
        self.restart = restart
        self.region = region
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # Closed on any way out: the host's client has a fixed number of connections, and
                # a subscription left open after an outage would hold one of them for good.
                with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(redis_keys.commands(database_of(self.client)))
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message and message.get("type") == "message":
                            self._dispatch(message["data"])
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("command listener restarting after: %s", exc)
                    self._stop.wait(2.0)

    def _dispatch(self, raw: str) -> None:
        try:
            command = json.loads(raw)
            session_id, action = command["session"], command["action"]
        except (ValueError, KeyError, TypeError):
            log.warning("malformed command ignored")
            return
        runner = self.runners().get(session_id)
        if runner is None:
            return  # another host owns it (or nobody): that host answers, or the caller times out
        threading.Thread(
            target=self._run_command, args=(runner, command), name=f"command-{action}", daemon=True
        ).start()

    def _run_command(self, runner: Any, command: dict[str, Any]) -> None:
        action, args = command["action"], command.get("args") or {}
        outcome = "ok"
        try:
            answer = self._perform(runner, action, args)
            reply = {"ok": True, **answer}
        except Exception as exc:
            reply = {"ok": False, "error": str(exc) or type(exc).__name__}
            # The caller gets the error as it is; the log line masks a phone number it quotes.
            outcome = exc.loggable if isinstance(exc, WaTasksError) else reply["error"]
        log.info(
            "command %s on session %s: %s", action, runner.session_id, outcome, extra={"session_id": runner.session_id}
        )
        self.client.set(redis_keys.command_reply(command["id"]), json.dumps(reply), ex=REPLY_TTL_SECONDS)

    def _perform(self, runner: Any, action: str, args: dict[str, Any]) -> dict[str, Any]:
        transport = runner.transport
        if action == "pair":
            if not hasattr(transport, "pair_phone"):
                raise SessionError(f"the {type(transport).__name__} cannot pair by phone code")
            phone = normalize(args.get("phone"), self.region)
            return {"code": transport.pair_phone(phone.number)}
        if action == "logout":
            if not hasattr(transport, "logout"):
                raise SessionError(f"the {type(transport).__name__} cannot log out")
            transport.logout()
            return {}
        if action == "probe":
            return {"latency_ms": round(probe(runner) * 1000, 1)}
        if action == "reconnect":
            self.restart(runner.session_id)
            return {}
        if action == "check_numbers":  # contact sync (wa_tasks.pipeline.contacts): one query, nobody messaged
            numbers = [str(n) for n in args.get("numbers") or []]
            return {"on_whatsapp": transport.is_on_whatsapp(numbers) if numbers else {}}
        raise ValueError(f"unknown action {action!r}")


def probe(runner: Any) -> float:
    """Time one round trip to WhatsApp without messaging anyone: the session asks whether its own
    number is on WhatsApp, so no stranger is ever looked up."""
    transport = runner.transport
    if not transport.connected:
        raise SessionError(f"session is {getattr(transport, 'status', None) or runner.status}")
    own = runner.phone_number
    if not own or not hasattr(transport, "is_on_whatsapp"):
        raise SessionError("the session's own number is not known yet")
    started = time.monotonic()
    transport.is_on_whatsapp([own])
    return time.monotonic() - started
