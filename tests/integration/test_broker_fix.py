"""wa_tasks.infra.broker_fix: a Celery consumer that loses Redis while it holds an unacknowledged task
closes its connection without crashing, and the task is still in Redis when it comes back.

This is the sequence of Celery 5.7's ``Consumer.on_connection_error_after_connected``, run on
kombu directly against a real redis-server that is killed: a BRPOP in flight, one task delivered
and not acknowledged, then ``collect()`` and ``close()``."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Consumer, Exchange, Queue
from kombu.common import ignore_errors

import wa_tasks.infra.celery_app  # noqa: F401  (installs the fix, as every wa-tasks process does)
from support.workers import free_port
from wa_tasks.infra.redis_server import EmbeddedRedis

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    directory = Path(tempfile.mkdtemp(prefix="wa-broker-fix-"))
    server = EmbeddedRedis(directory, persistent=True, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_connection_lost_with_an_unacked_task_closes_cleanly(server: EmbeddedRedis) -> None:
    # Given a consumer holding one unacknowledged task, with a BRPOP in flight on
    # another queue
    url = f"redis://127.0.0.1:{server.port}/0"
    conn = Connection(url, transport_options={"visibility_timeout": 3600})
    channel = conn.default_channel
    # (a broadcast queue, as Celery's remote control has)
    broadcast = Queue("broadcast", Exchange("broadcast", "fanout"), auto_delete=True)
    Consumer(channel, queues=[broadcast], callbacks=[lambda body, message: None]).consume()
    tasks = conn.SimpleQueue("tasks")
    tasks.put({"task": "wa.dispatch"})
    held = channel.basic_get("tasks", no_ack=False)
    assert held is not None and len(channel.qos._delivered) == 1
    Consumer(channel, queues=[Queue("empty")], callbacks=[lambda body, message: None]).consume()
    with contextlib.suppress(TimeoutError):
        conn.drain_events(timeout=0.2)
    assert channel._in_poll

    # When Redis dies and the consumer cleans up the way Celery's does
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    conn.collect(socket_timeout=1.0)
    ignore_errors(conn, conn.close)  # raised AttributeError ('hostname') before the fix

    # Then the task is still in Redis' unacknowledged set when it comes back (AOF), to be restored
    server.start()
    with Connection(url) as again:
        client = again.default_channel.client
        assert client.hlen("unacked") == 1
        assert client.zcard("unacked_index") == 1
