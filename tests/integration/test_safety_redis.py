"""Ban safety's Redis counters on a real Redis: kept when safety is on, not touched at all when it
is off (they were read and written for every message either way, two round trips a send)."""

from __future__ import annotations

import time

import pytest
import redis as redis_lib

from sessions_host.safety import RedisSafetyStore, SafetyRules, SessionSafety
from support.stack import Stack
from wa_tasks.core import redis_keys

pytestmark = pytest.mark.integration


def _commands_run(client: redis_lib.Redis) -> int:
    """Commands Redis has run so far (``INFO commandstats``), not counting the ``INFO`` calls."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")


@pytest.mark.parametrize("enabled", [True, False], ids=["safety-on", "safety-off"])
def test_safety_off_sends_no_redis_command_per_message(redis_clean: str, enabled: bool) -> None:
    # Given a session's safety over the Redis store, switched on or off
    client = redis_lib.Redis.from_url(redis_clean)
    rules = SafetyRules(enabled=enabled)
    safety = SessionSafety("wa-1", RedisSafetyStore(client, rules), rules, number_since=time.time())
    before = _commands_run(client)

    # When it is asked about 10 messages (a new number may take 12 new contacts a day) and counts
    # each as sent, as the host does
    for i in range(10):
        decision, is_new = safety.check(f"62812{i:07d}")
        assert decision.allowed
        safety.sent(f"62812{i:07d}", is_new)
        assert safety.pace_factor() == 1.0

    # Then switched on it read and wrote its counters; switched off Redis ran nothing for it
    ran = _commands_run(client) - before
    if enabled:
        assert ran >= 20, ran  # at least a read and a write a message
        assert client.scard(redis_keys.session_contacts("wa-1")) == 10
    else:
        assert ran == 0, ran
        assert client.keys(f"{redis_keys.PREFIX}*") == []


@pytest.mark.parametrize("enabled", [True, False], ids=["safety-on", "safety-off"])
def test_a_host_keeps_safety_counters_only_while_safety_is_on(stack: Stack, enabled: bool) -> None:
    # Given a session host with ban safety on or off (the tests' default is off)
    stack.env["WA_SAFETY_ENABLED"] = "true" if enabled else "false"
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When it sends 5 messages
    ids = [stack.client.send(f"0812{i:08d}", text=f"Tagihan {i}") for i in range(5)]
    stack.wait_all(ids, "sent", "delivered", "read")

    # Then the session's counters and contacts are in Redis if safety is on, and nowhere if it is off
    counted = stack.redis.keys(f"{redis_keys.PREFIX}safety:wa-1:*")
    contacts = stack.redis.scard(redis_keys.session_contacts("wa-1"))
    if enabled:
        assert counted and contacts == 5
    else:
        assert counted == [] and contacts == 0
