"""Several session hosts share the sessions through Redis leases: each session has one owner, a
killed host's sessions are taken over within the lease TTL and their backlog is delivered once,
and a host whose lease was taken cannot send (fencing)."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
import redis
from sqlalchemy import select

from models import Message
from sessions_host import leases as leases_module
from sessions_host.leases import Leases
from support.stack import Stack
from wa_tasks.core import redis_keys
from wa_tasks.pipeline import lifecycle

pytestmark = pytest.mark.integration

FINAL = ("sent", "delivered", "read", "failed")


def _owners(stack: Stack, *session_ids: str) -> dict[str, str | None]:
    leases = Leases(stack.redis, "test", 1.0)
    return {s: leases.owner(s) for s in session_ids}


def _wait_owned(stack: Stack, session_ids: tuple[str, ...], timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners = _owners(stack, *session_ids)
        if all(owners.values()):
            return owners  # type: ignore[return-value]
        time.sleep(0.1)
    raise AssertionError(f"sessions not all owned: {_owners(stack, *session_ids)}\n{stack.logs()}")


def test_two_hosts_share_the_sessions_and_take_over_a_killed_hosts_backlog(stack: Stack) -> None:
    # Given two hosts and two sessions: each host owns one
    stack.add_session("wa-1", priority=1, pace_seconds=0.3)
    stack.add_session("wa-2", priority=2, pace_seconds=0.3)
    stack.start("worker", "sessions-a", "sessions-b")
    stack.wait_connected("wa-1", "wa-2")
    # (a host that started first may take both, then hands one over to the other within heartbeats)
    deadline = time.monotonic() + 30
    while True:
        owners = _wait_owned(stack, ("wa-1", "wa-2"))
        if sorted(h.split("@")[0] for h in owners.values()) == ["sessions-a", "sessions-b"]:
            break
        assert time.monotonic() < deadline, f"sessions not shared between the hosts: {owners}\n{stack.logs()}"
        time.sleep(0.2)
    stack.wait_connected("wa-1", "wa-2")

    # When a backlog waits on wa-1 and its host is killed with SIGKILL
    ids = [stack.client.send(f"0812{i:08d}", text=f"antrian {i}", session="wa-1") for i in range(20)]
    while len(stack.ledger()) < 3:
        time.sleep(0.05)
    victim = owners["wa-1"].split("@")[0]
    survivor = "sessions-b" if victim == "sessions-a" else "sessions-a"
    killed_at = time.monotonic()
    stack.processes[victim].send_signal(signal.SIGKILL)
    stack.processes.pop(victim).wait()

    # Then the other host owns wa-1 within the lease TTL (+ a heartbeat), and the backlog arrives once
    while _owners(stack, "wa-1")["wa-1"] in (None, owners["wa-1"]):
        assert time.monotonic() - killed_at < stack.settings.lease_ttl_seconds + 5, stack.logs()
        time.sleep(0.1)
    assert _owners(stack, "wa-1")["wa-1"].startswith(survivor)  # type: ignore[union-attr]
    statuses = stack.wait_all(ids, *FINAL, timeout=60)
    ledger = stack.ledger()
    assert max(Counter(e.text for e in ledger).values()) == 1
    failed = [s for s in statuses if s["status"] == "failed"]
    assert all(s["error"] == lifecycle.AMBIGUOUS_SEND for s in failed) and len(failed) <= 1
    # An ambiguous send (the host died during it) may or may not have reached the phone
    assert 20 - len(failed) <= len(ledger) <= 20


def test_a_host_whose_lease_was_taken_cannot_send(stack: Stack) -> None:
    # Given two hosts and one session, owned by one of them
    stack.add_session("wa-1", priority=1, pace_seconds=0.2)
    stack.start("worker", "sessions-a", "sessions-b")
    stack.wait_connected("wa-1")
    owner = _wait_owned(stack, ("wa-1",))["wa-1"].split("@")[0]
    other = "sessions-b" if owner == "sessions-a" else "sessions-a"
    ids = [stack.client.send(f"0812{i:08d}", text=f"pesan {i}") for i in range(30)]
    while len(stack.ledger()) < 3:
        time.sleep(0.05)

    # When the owner freezes (SIGSTOP) past the lease TTL, the other host takes the session over,
    # and then the old owner wakes up (SIGCONT) still believing it serves the session
    stack.processes[owner].send_signal(signal.SIGSTOP)
    while _owners(stack, "wa-1")["wa-1"] in (None,) or not _owners(stack, "wa-1")["wa-1"].startswith(other):  # type: ignore[union-attr]
        time.sleep(0.1)
    time.sleep(1.0)
    stack.processes[owner].send_signal(signal.SIGCONT)

    # Then nobody receives a message twice, and the old owner stops serving the session
    statuses = stack.wait_all(ids, *FINAL, timeout=60)
    assert max(Counter(e.text for e in stack.ledger()).values()) == 1
    assert sum(s["status"] != "failed" for s in statuses) >= 29
    deadline = time.monotonic() + 10
    log = ""
    while time.monotonic() < deadline:
        log = (stack.logdir / f"{owner}.log").read_text()
        if "lease lost to another host" in log or "no longer holds its lease" in log:
            break
        time.sleep(0.2)
    assert "lease lost to another host" in log or "no longer holds its lease" in log, stack.logs()
    with stack.db() as db:
        assert len(db.scalars(select(Message.id)).all()) == 30


# One script call renews all of a host's leases (against a real Redis, no host process) ------------


def test_renewing_all_leases_renews_those_held_and_reports_those_another_host_took(redis_clean: str) -> None:
    # Given host a holding the leases of five sessions (TTL 3 s), two of which host b took after
    # they expired (a was paused past its TTL), and one that expired and nobody took
    client = redis.Redis.from_url(redis_clean, decode_responses=True)
    a, b = Leases(client, "a", 3.0), Leases(client, "b", 3.0)
    held = [a.acquire(f"wa-{i}") for i in range(5)]
    assert all(held)
    for session_id in ("wa-1", "wa-3", "wa-4"):
        client.delete(redis_keys.lease(session_id))
    taken = {s: b.acquire(s) for s in ("wa-1", "wa-3")}
    client.pexpire(redis_keys.lease("wa-0"), 500)  # a's own lease, close to expiring
    b_ttl = client.pttl(redis_keys.lease("wa-1"))

    # When a renews all it believes it holds, in one call
    lost = a.renew_all([lease for lease in held if lease is not None])

    # Then it is told it lost wa-1 and wa-3 to b and that wa-4 expired, and only those; its other
    # leases run for a full TTL again; b's leases are still b's with b's TTL; the expired one was
    # not brought back
    assert {lease.session_id: holder for lease, holder in lost.items()} == {"wa-1": "b", "wa-3": "b", "wa-4": None}
    assert client.pttl(redis_keys.lease("wa-0")) > 2500
    assert client.pttl(redis_keys.lease("wa-2")) > 2500
    assert a.owner("wa-0") == a.owner("wa-2") == "a"
    assert a.owner("wa-1") == a.owner("wa-3") == "b"
    assert client.get(redis_keys.lease("wa-1")) == taken["wa-1"].value  # type: ignore[union-attr]
    assert client.pttl(redis_keys.lease("wa-1")) <= b_ttl
    assert client.exists(redis_keys.lease("wa-4")) == 0


def test_renewing_more_leases_than_one_call_takes_reports_each_lost_one(redis_clean: str) -> None:
    # Given a host holding more leases than one script call renews, and losing one in each call's
    # batch (the first, one at a batch's end, one in the last batch)
    client = redis.Redis.from_url(redis_clean, decode_responses=True)
    a, b = Leases(client, "a", 3.0), Leases(client, "b", 3.0)
    count = leases_module.RENEW_BATCH * 2 + 7
    held = [a.acquire(f"s{i}") for i in range(count)]
    gone = {"s0", f"s{leases_module.RENEW_BATCH - 1}", f"s{count - 1}"}
    for session_id in gone:
        client.delete(redis_keys.lease(session_id))
        assert b.acquire(session_id)

    # When it renews them all
    lost = a.renew_all([lease for lease in held if lease is not None])

    # Then exactly those are reported lost, and every other one is still its own
    assert {lease.session_id for lease in lost} == gone
    assert set(lost.values()) == {"b"}
    owners = client.mget([redis_keys.lease(f"s{i}") for i in range(count)])
    assert sum(1 for value in owners if value and value.startswith("a|")) == count - len(gone)
    assert a.renew_all([]) == {}
