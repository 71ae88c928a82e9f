"""The session host's scheduler (sessions_host.scheduler) on a real Redis and a real kombu channel,
with stand-in runners: what it takes, in which order, and that a freed send thread takes the next
message at once rather than at the loop's safety-net timeout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from celery import Celery

from sessions_host.scheduler import MAX_WAIT_SECONDS, Scheduler
from wa_tasks.core import redis_keys, task_names
from wa_tasks.infra.celery_app import make_app
from wa_tasks.infra.redis_client import unacked
from wa_tasks.settings import Settings


class _Runner:
    """What the scheduler asks of a session runner: its queue, whether it may take a message, and
    the processing of one (here: hold it for ``hold`` seconds, then acknowledge it)."""

    def __init__(self, session_id: str, hold: float) -> None:
        self.session_id = session_id
        self.queue_name = redis_keys.session_queue(session_id)
        self.hold = hold
        self.busy = False
        self.wake: Any = lambda: None
        self.taken: list[tuple[float, str]] = []

    def ready_in(self, now: float) -> float | None:
        return None if self.busy else 0.0

    def process(self, message: Any) -> None:
        _args, kwargs, _embed = message.decode()
        self.taken.append((time.monotonic(), kwargs["message_id"]))
        time.sleep(self.hold)
        message.ack()


@pytest.fixture
def app(redis_clean: str, tmp_path: Any) -> Iterator[Celery]:
    settings = Settings(redis_url=redis_clean, database_url=f"sqlite:///{tmp_path}/db.sqlite", data_dir=tmp_path)
    yield make_app(settings)


def _publish(app: Celery, session_id: str, message_id: str, priority: int = 5) -> None:
    app.send_task(
        task_names.DELIVER,
        kwargs={"message_id": message_id},
        queue=redis_keys.session_queue(session_id),
        priority=priority,
    )


def _scheduler(app: Celery, redis_url: str, threads: int) -> Scheduler:
    waker = redis_lib.Redis.from_url(redis_url)
    return Scheduler(app, redis_url, waker, "sched@test", threads)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def test_with_every_send_thread_busy_the_next_message_goes_when_one_frees(app: Celery, redis_clean: str) -> None:
    # Given one send thread, two sessions and six messages each, every message held 50 ms
    for i in range(6):
        _publish(app, "a", f"a{i}")
        _publish(app, "b", f"b{i}")
    runners = [_Runner("a", 0.05), _Runner("b", 0.05)]
    scheduler = _scheduler(app, redis_clean, threads=1)
    for runner in runners:
        scheduler.add(runner)
    client = redis_lib.Redis.from_url(redis_clean)
    scheduler.start()
    try:
        # Then all twelve are processed, each taken as soon as the thread is free: waiting for the
        # loop's safety-net timeout instead would take MAX_WAIT_SECONDS a message
        _wait_for(lambda: sum(len(r.taken) for r in runners) == 12, MAX_WAIT_SECONDS / 2, "twelve messages processed")
        # And each session's messages in their order, the sessions taking turns
        assert [m for _, m in runners[0].taken] == [f"a{i}" for i in range(6)]
        assert [m for _, m in runners[1].taken] == [f"b{i}" for i in range(6)]
        order = [m[0] for _, m in sorted(runners[0].taken + runners[1].taken)]
        assert all(x != y for x, y in zip(order, order[1:], strict=False)), order
        # And every message was acknowledged: nothing is left unacknowledged in kombu's bookkeeping
        _wait_for(lambda: client.hlen("unacked") == 0, 5, "the last acknowledgement")
    finally:
        scheduler.stop()


def test_an_urgent_message_is_the_next_one_its_session_takes(app: Celery, redis_clean: str) -> None:
    # Given a session with a backlog of bulk messages, held 100 ms each, on one send thread
    runner = _Runner("a", 0.1)
    for i in range(5):
        _publish(app, "a", f"bulk{i}", priority=5)
    scheduler = _scheduler(app, redis_clean, threads=1)
    scheduler.add(runner)
    scheduler.start()
    try:
        _wait_for(lambda: len(runner.taken) >= 1, 5, "the first bulk message taken")
        # When an urgent message comes while the first is being sent
        _publish(app, "a", "urgent", priority=0)
        _wait_for(lambda: len(runner.taken) == 6, 5, "every message processed")
        # Then it is the next one taken
        assert [m for _, m in runner.taken][1] == "urgent"
    finally:
        scheduler.stop()


def test_stop_ends_the_wait_of_a_loop_whose_send_threads_are_all_busy(app: Celery, redis_clean: str) -> None:
    # Given a loop whose only send thread holds a message for three seconds
    runner = _Runner("a", 3.0)
    _publish(app, "a", "m0")
    _publish(app, "a", "m1")
    scheduler = _scheduler(app, redis_clean, threads=1)
    scheduler.add(runner)
    scheduler.start()
    _wait_for(lambda: len(runner.taken) == 1, 5, "the first message taken")
    # When the host stops
    stopping = threading.Thread(target=scheduler.stop)
    stopping.start()
    # Then the loop ends at once, while the send is still in flight
    _wait_for(lambda: not scheduler.alive, 1.5, "the loop ended")
    assert stopping.is_alive(), "stop returned before the send in flight finished"
    # And stop returns once that send is done, and nothing more was taken
    stopping.join(timeout=10)
    assert not stopping.is_alive()
    assert [m for _, m in runner.taken] == ["m0"]


def _redelivered(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as kombu puts it back on its queue: marked redelivered, nothing else changed."""
    message["headers"]["redelivered"] = True
    message["properties"]["delivery_info"]["redelivered"] = True
    return message


class _HoldingRunner(_Runner):
    """Takes a message and keeps it unacknowledged until ``release`` is set."""

    def __init__(self, session_id: str, release: threading.Event) -> None:
        super().__init__(session_id, 0.0)
        self.release = release

    def process(self, message: Any) -> None:
        _args, kwargs, _embed = message.decode()
        self.taken.append((time.monotonic(), kwargs["message_id"]))
        self.release.wait(30)
        message.ack()


def test_a_message_taken_and_not_acknowledged_is_kept_as_kombu_keeps_it_and_restored_as_it_was(
    app: Celery, redis_clean: str
) -> None:
    # Given two sessions with a message each, and their bodies as published
    client = redis_lib.Redis.from_url(redis_clean)
    _publish(app, "a", "a0")
    _publish(app, "b", "b0")
    published = {key: client.lrange(key, 0, -1) for key in client.keys("wa.session.*")}
    assert sorted(len(v) for v in published.values()) == [1, 1], published
    # When the scheduler takes both (the first by a blocking pop, the next by the script that takes
    # and records in one step) and neither is acknowledged yet
    release = threading.Event()
    runners = [_HoldingRunner("a", release), _HoldingRunner("b", release)]
    scheduler = _scheduler(app, redis_clean, threads=2)
    for runner in runners:
        scheduler.add(runner)
    scheduler.start()
    try:
        _wait_for(lambda: all(r.taken for r in runners), 5, "both messages taken")
        # Then each is in kombu's bookkeeping: its body as published, its exchange and routing key
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            held = {tag: json.loads(raw) for tag, raw in client.hgetall(channel.unacked_key).items()}
            assert len(held) == 2 and client.zcard(channel.unacked_index_key) == 2
            bodies = sorted(json.dumps(body, sort_keys=True) for body, _exchange, _route in held.values())
            assert bodies == sorted(json.dumps(json.loads(v[0]), sort_keys=True) for v in published.values())
            routes = sorted(tuple(entry[1:]) for entry in held.values())
            assert routes == [("", "wa.session.a"), ("", "wa.session.b")], routes
            assert sorted(tag for tag, *_ in unacked(channel)) == sorted(t.decode() for t in held)
            # And kombu restores each to its queue as it was published (what a host taking over does)
            for tag in held:
                channel.qos.restore_by_tag(tag.decode())
        restored = {key: [json.loads(m) for m in client.lrange(key, 0, -1)] for key in client.keys("wa.session.*")}
        expected = {key: [_redelivered(json.loads(m)) for m in v] for key, v in published.items()}
        assert restored == expected
    finally:
        release.set()
        scheduler.stop()
