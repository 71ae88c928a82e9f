"""Recovery that does not degrade, against real processes and a real Redis: a session host resumes
as quickly after its fifth Redis outage as after its first, and says what happened when its lease
expired while Redis was down."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from models.db import create
from support.stack import Stack
from support.workers import free_port
from wa_tasks import tasks
from wa_tasks.core import redis_keys, task_names
from wa_tasks.infra.redis_server import EmbeddedRedis
from wa_tasks.pipeline import lifecycle
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

#: The outages' length, and the lease TTL of the host: a short outage leaves the lease in place.
OUTAGE_SECONDS = 2.0
LEASE_TTL_SECONDS = 6.0


@pytest.fixture
def own_redis(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Stack, EmbeddedRedis]]:
    """A stack whose broker is a Redis of its own with AOF (as ``wa-tasks up`` starts it), so that
    the test can stop and start it without disturbing other tests; the simulated WhatsApp network
    stays on the tests' Redis."""
    directory = Path(tempfile.mkdtemp(prefix="wa-recovery-redis-"))  # short: a Unix socket lives here
    server = EmbeddedRedis(directory, persistent=True, port=free_port())
    server.start()
    own = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{server.port}/0",
            "sim_redis_url": settings.redis,
            "lease_ttl_seconds": LEASE_TTL_SECONDS,
        }
    )
    logdir = tmp_path / "logs"
    logdir.mkdir()
    stack = Stack(own, logdir)
    try:
        yield stack, server
    finally:
        stack.stop()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(stack.logs())


def _outage(server: EmbeddedRedis, seconds: float) -> float:
    """Stop Redis (SIGTERM: it writes its AOF), keep it down ``seconds``, start it again; returns
    when it answers (monotonic)."""
    server.stop()
    time.sleep(seconds)
    server.start()
    return time.monotonic()


def _deliver(stack: Stack, message_id: str) -> None:
    """Put a deliver for ``message_id`` on wa-1's queue, as dispatch does."""
    stack.app.send_task(
        task_names.DELIVER, kwargs={"message_id": message_id}, queue=redis_keys.session_queue("wa-1"), priority=5
    )


@pytest.mark.timing
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_each_redis_outage_is_resumed_from_as_quickly_as_the_first(own_redis: tuple[Stack, EmbeddedRedis]) -> None:
    # Given a session host (no worker: the test puts each deliver on the session's queue itself)
    # serving one session, and a message waiting for each outage
    stack, server = own_redis
    stack.add_session("wa-1", priority=1)
    ids = [stack.client.send(f"0812{i:08d}", text=f"setelah gangguan {i}", session="wa-1") for i in range(5)]
    stack.start("sessions")
    stack.wait_connected("wa-1")

    # When Redis is down for 2 s, four times, and a deliver is published each time it answers again
    resumed = []
    for i in range(4):
        answered = _outage(server, OUTAGE_SECONDS)
        _deliver(stack, ids[i])
        stack.wait_ledger(i + 1, timeout=60)
        resumed.append(time.monotonic() - answered)
    print("resumed after outages 1..4 in " + ", ".join(f"{s:.1f}s" for s in resumed))

    # Then the session takes its queue again as quickly after the fourth outage as after the first
    log = stack.log_text("sessions")
    assert log.count("sessions_host.scheduler: broker connection lost") >= 4 and log.count("session wa-1 started") == 1
    assert resumed[-1] <= resumed[0] + 1.5 and resumed[-1] <= 3.0, resumed

    # When Redis stays down past the lease TTL (the host alone: nobody takes its session over)
    _outage(server, LEASE_TTL_SECONDS + 1.0)

    # Then the host says that the lease expired, not that another host took it, and serves the
    # session again (the deliver is published once it has: one published while the old consumer
    # is being cancelled can be dropped by kombu, and only the sweeper, not running here, puts it back)
    stack.wait_for_log("sessions", "session wa-1: lease expired, not renewed for", timeout=20)
    assert "lease lost to another host" not in stack.log_text("sessions")
    deadline = time.monotonic() + 20
    while stack.log_text("sessions").count("session wa-1 started") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.log_text("sessions").count("session wa-1 started") == 2, stack.logs()
    stack.wait_connected("wa-1")
    _deliver(stack, ids[4])
    stack.wait_ledger(5, timeout=30)


def _sweep(stack: Stack) -> None:
    """Run the sweeper once on the worker (as beat does); returns when it has finished."""
    task = stack.app.send_task("wa.sweep", priority=3)
    stack.wait_for_log("worker", f"wa.sweep[{task.id}] succeeded", timeout=30)


def _queued_delivers(stack: Stack) -> int:
    return stack.queue_length(redis_keys.session_queue("wa-1"))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_fresh_redis_is_not_taken_for_a_broker_restart(own_redis: tuple[Stack, EmbeddedRedis]) -> None:
    # Given a worker (no session host) and a message routed to wa-1 whose deliver waits on its
    # queue, on a Redis no sweep has seen yet
    stack, server = own_redis
    stack.add_session("wa-1", priority=1)
    while float(stack.redis.info("server")["uptime_in_seconds"]) < tasks.BROKER_START_MARGIN_SECONDS + 2:
        time.sleep(0.2)  # routed well after this Redis started, beyond the sweeper's allowance
    message_id = stack.client.send("081200000001", text="Tagihan", session="wa-1")
    for key in stack.redis.scan_iter(f"{redis_keys.DEFAULT_QUEUE}*"):
        stack.redis.delete(key)  # its dispatch: routed here instead, to a session nobody serves
    with stack.db() as db:
        assert lifecycle.route(db, message_id, "wa-1")
    _deliver(stack, message_id)
    stack.start("worker")

    # When the sweeper runs for the first time
    _sweep(stack)

    # Then it republishes nothing: the deliver it would double is right there
    assert _queued_delivers(stack) == 1
    assert "republished" not in stack.log_text("worker")
    assert stack.redis.get(redis_keys.BROKER_RUN_ID) == str(stack.redis.info("server")["run_id"])

    # When Redis restarts with its data (a new run id), then the sweeper republishes the deliver
    _outage(server, 0.0)
    _sweep(stack)
    assert _queued_delivers(stack) == 2
    stack.wait_for_log("worker", "broker restarted: deliver republished for 1 routed message(s)", timeout=1)

    # When Redis comes back without any data (no run id at all), then it republishes it too: the
    # message was routed before this Redis started
    server.stop()
    shutil.rmtree(server.directory / "appendonlydir")
    (server.directory / "dump.rdb").unlink(missing_ok=True)
    server.start()
    _sweep(stack)
    assert _queued_delivers(stack) == 1
    stack.wait_for_log("worker", "broker came back without its data", timeout=1)


def _wait_blocked_on_sessions_table(conn: Connection, timeout: float = 60.0) -> None:
    """Wait until another backend waits for the lock on ``whatsapp_sessions`` (the worker's batch)."""
    deadline = time.monotonic() + timeout
    while not conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE '%whatsapp_sessions%'"
        )
    ).scalar():
        assert time.monotonic() < deadline, "the worker's batch did not reach the database"
        time.sleep(0.1)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_held_by_a_killed_worker_is_routed_again_within_seconds(stack: Stack) -> None:
    # Given a bulk's batch on the broker, and a worker held up in it by the database (the batch's
    # first query waits for a lock on the sessions table)
    stack.add_session("wa-1", priority=1)
    recipients = 60
    stack.client.send_bulk([{"whatsapp": f"0812{i:08d}"} for i in range(recipients)], text="Gangguan jaringan")
    admin = create(stack.settings.database)
    try:
        with admin.connect() as conn:
            conn.execute(text("LOCK TABLE whatsapp_sessions IN ACCESS EXCLUSIVE MODE"))
            stack.start("worker")
            _wait_blocked_on_sessions_table(conn)

            # While that worker lives, its batch stays its own, however long it takes
            time.sleep(stack.settings.lease_ttl_seconds + 3 * stack.settings.heartbeat_seconds)
            assert stack.queue_length(redis_keys.DEFAULT_QUEUE) == 0 and stack.redis.hlen("unacked") == 1

            # When the worker is killed with SIGKILL in the middle of the batch (and started again)
            killed = time.monotonic()
            stack.kill("worker")
            conn.rollback()
    finally:
        admin.dispose()
    stack.start_process("sessions")

    # Then the batch is routed again within seconds, not at the sweeper's next pass (none runs here)
    deadline = killed + 30
    while stack.statuses()["queued"]:
        assert time.monotonic() < deadline, f"still queued 30s after the kill: {dict(stack.statuses())}"
        time.sleep(0.2)
    print(f"batch of a killed worker routed again {time.monotonic() - killed:.1f}s after the kill")
    assert time.monotonic() - killed < 15
    assert "put back on their queues" in stack.log_text("worker")

    # And every message is sent once, each routed once (the host ignored no second deliver)
    rows = stack.wait_final(recipients, timeout=60)
    assert all(m.status in ("sent", "delivered", "read") for m in rows)
    assert sorted(e.to for e in stack.ledger()) == sorted(m.to_number for m in rows)
    assert stack.queue_length(redis_keys.session_queue("wa-1")) == 0
    log = stack.log_text("sessions")
    assert "duplicate deliver ignored" not in log and "stale deliver ignored" not in log


def test_a_routed_message_whose_deliver_left_the_broker_is_delivered_again(stack: Stack) -> None:
    # Given a message routed to wa-1 whose deliver is no longer anywhere in the broker: Redis handed
    # it to a session host's BRPOP, and the host was killed before kombu recorded it as unacknowledged
    # (on a broker the sweeper has seen before, so that no broker restart is suspected)
    stack.env["WA_SWEEP_AFTER_SECONDS"] = "1"
    stack.redis.set(redis_keys.BROKER_RUN_ID, str(stack.redis.info("server")["run_id"]))
    stack.add_session("wa-1", priority=1)
    message_id = stack.client.send("081200000001", text="Tagihan", session="wa-1")
    for key in stack.redis.scan_iter(f"{redis_keys.DEFAULT_QUEUE}*"):
        stack.redis.delete(key)  # its dispatch: routed here instead, with no deliver published
    with stack.db() as db:
        assert lifecycle.route(db, message_id, "wa-1")
    stack.start()
    stack.wait_connected("wa-1")
    assert stack.client.status(message_id)["status"] == "routed"

    # When the sweeper runs (as beat does) once it has been routed longer than WA_SWEEP_AFTER_SECONDS
    with stack.beat("wa.sweep", every=1.0):
        # Then the message is sent, once
        stack.wait_status(message_id, "sent", "delivered", "read", timeout=30)
    assert len(stack.ledger("6281200000001")) == 1
    assert "deliver republished for 1 routed message(s) whose deliver left the broker" in stack.log_text("worker")
