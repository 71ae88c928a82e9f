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
from sessions_host.leases import Leases
from sessions_host.limits import LeaseLost, Limits
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


# Session leases live by their host's lease (against a real Redis, no host process) ----------------


def test_a_live_hosts_leases_are_its_own_and_a_dead_hosts_are_taken_over(redis_clean: str) -> None:
    # Given host a holding the leases of five sessions, and host b beside it
    client = redis.Redis.from_url(redis_clean, decode_responses=True)
    a, b = Leases(client, "a", 3.0), Leases(client, "b", 3.0)
    assert a.renew() is False  # its first heartbeat: no host lease before
    assert b.renew() is False
    held = [a.acquire(f"wa-{i}") for i in range(5)]
    assert all(held)

    # When b tries to take one while a is alive, then after a's host lease expired (a paused past
    # its TTL)
    assert b.acquire("wa-1") is None
    assert a.renew() is True
    assert a.lost([lease for lease in held if lease is not None], expired=False) == {}
    client.delete(redis_keys.host_lease("a"))
    taken = {s: b.acquire(s) for s in ("wa-1", "wa-3")}

    # Then b holds those two under new fencing tokens; a, renewing, learns its host lease had
    # expired and is told which sessions b took and which are still its own but must start again
    assert all(taken.values())
    assert all(taken[s].token > held[int(s[-1])].token for s in taken)  # type: ignore[union-attr]
    assert a.renew() is False
    lost = a.lost([lease for lease in held if lease is not None], expired=True)
    assert {lease.session_id: holder for lease, holder in lost.items()} == {
        "wa-0": None,
        "wa-1": "b",
        "wa-2": None,
        "wa-3": "b",
        "wa-4": None,
    }
    # Its own leases come back with the same token; b's stay b's while b is alive
    again = a.acquire("wa-0")
    assert again is not None and again.token == held[0].token  # type: ignore[union-attr]
    assert a.acquire("wa-1") is None
    assert a.owner("wa-1") == a.owner("wa-3") == "b"
    assert client.get(redis_keys.lease("wa-1")) == taken["wa-1"].value  # type: ignore[union-attr]


def test_a_runner_that_found_its_lease_taken_is_told_by_whom(redis_clean: str) -> None:
    # Given host a holding two leases, one of which was released and taken by b (a live host)
    client = redis.Redis.from_url(redis_clean, decode_responses=True)
    a, b = Leases(client, "a", 3.0), Leases(client, "b", 3.0)
    a.renew()
    b.renew()
    first, second = a.acquire("wa-1"), a.acquire("wa-2")
    assert first is not None and second is not None
    a.release(first)
    assert b.acquire("wa-1") is not None

    # When a asks about both, its host lease alive
    lost = a.lost([first, second], expired=False)

    # Then only the taken one is lost, to b
    assert {lease.session_id: holder for lease, holder in lost.items()} == {"wa-1": "b"}


def test_no_pace_slot_without_the_lease_and_a_live_host_lease(redis_clean: str) -> None:
    # Given host a holding a session's lease
    client = redis.Redis.from_url(redis_clean, decode_responses=True)
    a = Leases(client, "a", 3.0)
    a.renew()
    lease = a.acquire("wa-1")
    assert lease is not None
    limits = Limits(client)

    # Then it gets the pace slot while both its leases hold, and not once its host lease expired
    # (even though nobody took the session yet), nor once another host took the session
    assert limits.pace_slot("wa-1", 0.001, lease.value) == 0.0
    client.delete(redis_keys.host_lease("a"))
    with pytest.raises(LeaseLost):
        limits.pace_slot("wa-1", 0.001, lease.value)
    a.renew()
    time.sleep(0.01)
    assert limits.pace_slot("wa-1", 0.001, lease.value) == 0.0
    client.set(redis_keys.lease("wa-1"), "b|99")
    with pytest.raises(LeaseLost):
        limits.pace_slot("wa-1", 0.001, lease.value)


def test_a_host_looking_for_its_share_is_told_which_sessions_it_could_take(redis_clean: str) -> None:
    # Given a live host a holding wa-0, a dead host c named in wa-1's lease, wa-2 free, and b's own wa-3
    client = redis.Redis.from_url(redis_clean, decode_responses=True)
    a, b = Leases(client, "a", 3.0), Leases(client, "b", 3.0)
    a.renew()
    b.renew()
    assert a.acquire("wa-0") is not None
    client.set(redis_keys.lease("wa-1"), "c|7")
    assert b.acquire("wa-3") is not None

    # Then b could take all but a's, and does take the dead host's
    assert b.takeable(["wa-0", "wa-1", "wa-2", "wa-3"]) == ["wa-1", "wa-2", "wa-3"]
    assert b.takeable([]) == []
    taken = b.acquire("wa-1")
    assert taken is not None and b.owners(["wa-0", "wa-1", "wa-2"]) == ["a", "b", None]
