"""The processes as an operator runs them: Flower over a real stack, the CLI, ``./dev up`` on the
embedded defaults (nothing configured) and ``wa-tasks demo``."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from support.stack import Stack
from support.workers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read())


def _poll(fn: Any, timeout: float, what: str, logs: Any = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout}s (last: {last!r})\n{logs()}")


class _Broadcasts:
    """Counts the remote-control commands broadcast on the stack's broker (Flower's among them):
    kombu publishes each on the Redis channel of the control exchange, its JSON in the body."""

    def __init__(self, stack: Stack) -> None:
        with stack.app.connection_for_write() as conn:
            topic = conn.default_channel.keyprefix_fanout + stack.app.control.mailbox.exchange.name
        self.pubsub = redis.Redis.from_url(stack.settings.broker_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(topic)
        self.seen: Counter[str] = Counter()

    def wait_for(self, method: str, count: int, timeout: float, logs: Any) -> None:
        """Wait until ``method`` has been broadcast ``count`` times since this object was made."""
        deadline = time.monotonic() + timeout
        while self.seen[method] < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{method} broadcast {self.seen[method]} times, not {count}, in {timeout}s\n{logs()}"
                )
            message = self.pubsub.get_message(timeout=1.0)
            if message is not None:
                payload = json.loads(message["data"])
                body = payload["body"]
                if payload["properties"].get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                self.seen[json.loads(body)["method"]] += 1


def test_flower_shows_each_session_queue_with_its_depth_and_the_sends(stack: Stack) -> None:
    # Given a stack with a slow session (a backlog builds up) and Flower on the same broker
    stack.add_session("wa-1", priority=1, pace_seconds=1.0)
    port = free_port()
    stack.env["WA_FLOWER_PORT"] = str(port)
    stack.start()
    stack.start_process("flower")
    stack.wait_connected("wa-1")

    def session_queue() -> dict[str, Any] | None:
        queues = _get_json(f"http://127.0.0.1:{port}/api/queues/length")["active_queues"]
        return next((q for q in queues if q["name"] == "wa.session.wa-1"), None)

    # (Flower lists the queue once it has inspected the host: the backlog below drains in about 8 s,
    # and a Flower still starting on a loaded machine would miss it)
    _poll(session_queue, 60, "wa.session.wa-1 listed by Flower", stack.logs)
    ids = [stack.client.send(f"0812777700{i:02d}", text=f"antri {i}") for i in range(8)]

    # Then Flower's queue view lists wa.session.wa-1 with messages waiting in it
    def session_queue_depth() -> int:
        return int((session_queue() or {}).get("messages", 0))

    depth = _poll(session_queue_depth, 60, "wa.session.wa-1 with a depth in Flower", stack.logs)
    assert depth >= 1

    # And the sends appear as wa.deliver tasks of the session host (the last one surely after Flower
    # subscribed to the event stream)
    stack.wait_status(ids[-1], "sent", "delivered", "read")

    def last_deliver() -> list[dict[str, Any]]:
        tasks = _get_json(f"http://127.0.0.1:{port}/api/tasks?taskname=wa.deliver")
        return [t for t in tasks.values() if ids[-1] in (t.get("kwargs") or "") and t.get("state") == "SUCCESS"]

    [task] = _poll(last_deliver, 60, f"the wa.deliver of {ids[-1]} succeeded in Flower", stack.logs)
    assert task["worker"].startswith("sessions")
    assert task["result"] == "'sent'"
    assert task["received"] and task["started"] and task["succeeded"]  # every event of the send arrived


def test_flower_asks_for_the_configured_basic_auth(stack: Stack) -> None:
    port = free_port()
    stack.env.update({"WA_FLOWER_PORT": str(port), "WA_FLOWER_BASIC_AUTH": "operator:rahasia-123"})
    stack.start_process("flower")
    url = f"http://127.0.0.1:{port}/"

    def status(auth: str | None) -> int:
        request = urllib.request.Request(url)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 (loopback only)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    assert _poll(lambda: status(None) == 401, 60, "Flower refusing a request without credentials", stack.logs)
    assert status("operator:salah") == 401
    assert status("operator:rahasia-123") == 200
    assert "rahasia-123" not in " ".join(stack.processes["flower"].args)  # not in the process list

    refused = _cli(dict(stack.env, WA_FLOWER_BASIC_AUTH="", WA_FLOWER_HOST="0.0.0.0"), "flower")
    assert refused.returncode != 0 and "without WA_FLOWER_BASIC_AUTH" in refused.stderr


def test_the_session_host_answers_every_command_flower_sends_without_a_traceback(stack: Stack) -> None:
    # Given a session host and Flower beside it (Flower turns task events on every 5 s, and inspects)
    stack.add_session("wa-1", priority=1)
    port = free_port()
    stack.env["WA_FLOWER_PORT"] = str(port)
    stack.start("sessions")
    stack.wait_connected("wa-1")
    broadcasts = _Broadcasts(stack)
    stack.start_process("flower")
    host = "sessions@test"
    base = f"http://127.0.0.1:{port}/api"

    # Then Flower shows what the host answers to its inspect calls
    def inspected() -> dict[str, Any]:
        info = _get_json(f"{base}/workers?refresh=1&workername={host}", timeout=10).get(host) or {}
        return info if "registered" in info and "active_queues" in info else {}

    info = _poll(inspected, 60, f"{host} inspected by Flower", stack.logs)
    assert info["registered"] == ["wa.deliver"]
    assert [q["name"] for q in info["active_queues"]] == ["wa.session.wa-1"]
    assert info["stats"]["total"] == {"wa.deliver": 0}

    # And beside Flower sending its own enable_events (one every 5 s), a dozen more, each answered,
    # leave no traceback in the host's log
    broadcasts.wait_for("enable_events", 2, 60, stack.logs)
    broadcasts.pubsub.close()
    for _ in range(12):
        answer = stack.app.control.broadcast("enable_events", destination=[host], reply=True, timeout=5)
        assert answer == [{host: {"ok": "task events already enabled"}}], answer
    stack.check_alive()
    log = stack.log_text("sessions")
    assert "Traceback" not in log and "pidbox command error" not in log, log

    # And Flower's controls get a reason instead of a worker's effect (the host keeps running)
    def post(path: str, **params: str) -> tuple[int, str]:
        url = f"{base}/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=20) as r:  # noqa: S310
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()

    assert post(f"worker/pool/grow/{host}", n="1") == (
        403,
        f"Failed to grow '{host}' worker's pool: sessions are added and removed with `wa-tasks sessions add|remove`",
    )
    status, text = post("task/rate-limit/wa.send", workername=host, ratelimit="10/m")
    assert status == 403 and "wa-tasks sessions set SESSION --pace SECONDS" in text
    assert post(f"worker/shutdown/{host}")[0] == 200  # Flower does not wait for an answer to this one
    unknown = stack.app.control.broadcast("memdump", destination=[host], reply=True, timeout=5)
    assert unknown == [{host: {"error": "memdump is not supported by a session host"}}]

    # And still none after them; the host still runs
    stack.check_alive()
    log = stack.log_text("sessions")
    assert "Traceback" not in log and "pidbox command error" not in log, log
    assert "remote control shutdown refused" in log  # one line, for the operator who clicked it
    stack.wait_connected("wa-1")


def _cli(settings_env_: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wa_tasks", *args], env=settings_env_, capture_output=True, text=True, timeout=120
    )


def test_cli_manages_sessions_sends_and_reads_the_simulated_inbox(stack: Stack) -> None:
    env = stack.env
    added = _cli(env, "sessions", "add", "--device", "WA-1", "--priority", "1")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "wa-1"
    stack.start()
    stack.wait_connected("wa-1")

    listed = json.loads(_cli(env, "sessions", "list", "--json").stdout)["sessions"]
    assert [(s["id"], s["status"], s["isPrimary"]) for s in listed] == [("wa-1", "connected", True)]

    sent = _cli(env, "send", "0812-3456-7890", "--text", "Halo dari CLI")
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()
    stack.wait_status(message_id, "read")
    status = json.loads(_cli(env, "status", message_id).stdout)
    assert status["status"] == "read" and status["sessionId"] == "wa-1"

    inbox = json.loads(_cli(env, "sim", "inbox", "+62 812 3456 7890", "--json").stdout)
    assert [(e["to"], e["session"], e["text"]) for e in inbox] == [("6281234567890", "wa-1", "Halo dari CLI")]
    assert json.loads(_cli(env, "sim", "inbox", "0813-0000-0000", "--json").stdout) == []

    bad = _cli(env, "send", "0812", "--text", "x")
    assert bad.returncode != 0 and "not a valid phone number" in bad.stderr
    assert "Traceback" not in bad.stderr

    # A session's priority and pace change in place; the default pace comes back with --default-pace
    changed = _cli(env, "sessions", "set", "wa-1", "--priority", "3", "--pace", "1.5")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "session wa-1: priority 3, pace 1.5s"
    listed = json.loads(_cli(env, "sessions", "list", "--json").stdout)["sessions"]
    assert [(s["id"], s["priority"]) for s in listed] == [("wa-1", 3)]
    reset = _cli(env, "sessions", "set", "wa-1", "--default-pace")
    assert reset.stdout.strip() == "session wa-1: priority 3, pace WA_PACE_SECONDS", reset.stderr
    # And the number's age (ban safety's warm-up) is given, and forgotten again with --new-number
    aged = _cli(env, "sessions", "set", "wa-1", "--number-since", "2019-05-01")
    assert aged.stdout.strip().endswith("pace WA_PACE_SECONDS, number in use since 2019-05-01"), aged.stderr
    new = _cli(env, "sessions", "set", "wa-1", "--new-number")
    assert new.stdout.strip() == "session wa-1: priority 3, pace WA_PACE_SECONDS", new.stderr


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh machine: no WA_* settings at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    env["WA_VENV"] = sys.prefix  # the dev script reuses this interpreter's environment
    return env


def test_the_readme_run_command_comes_up_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    # Given nothing configured (no Redis URL, no database URL)
    env = _clean_env(tmp_path)
    env["WA_DATA_DIR"] = str(tmp_path / "var")
    web, flower = free_port(), free_port()
    env.update({"WA_WEB_PORT": str(web), "WA_FLOWER_PORT": str(flower)})
    log = (tmp_path / "up.log").open("w+")

    # When the README's run command starts
    proc = subprocess.Popen(
        [str(ROOT / "dev"), "up"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    logs = lambda: Path(log.name).read_text()  # noqa: E731
    try:
        # Then the web process answers with both the database and its own Redis reachable
        health = _poll(lambda: _get_json(f"http://127.0.0.1:{web}/health"), 90, "web /health", logs)
        assert health == {"status": "ok", "database": True, "redis": True}
        _poll(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{flower}/", timeout=2).status == 200, 90, "Flower", logs
        )
        assert (tmp_path / "var" / "redis.sock").exists()
        assert (tmp_path / "var" / "wa-tasks.db").exists()
        assert (tmp_path / "var" / "appendonlydir").exists() or (tmp_path / "var" / "appendonly.aof").exists()
        output = logs()
        assert f"http://127.0.0.1:{web}/" in output and f"http://127.0.0.1:{flower}/" in output
        # And the printed address opens the management pages (open on loopback without a key)
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10) as opened:
            assert opened.url == f"http://127.0.0.1:{web}/dashboard" and b"Sends per number" in opened.read()
        for name in ("web", "worker", "beat", "sessions", "flower"):
            assert f"{name}" in output and "started (pid=" in output
    finally:
        # When Ctrl-C is pressed (SIGINT to the whole foreground group)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(60)
    # Then every process stopped and the private Redis with them
    output = logs()
    assert code == 0 or code == 130, output
    assert "sessions stopped" in output and "worker stopped" in output
    assert not _redis_alive(tmp_path / "var" / "redis.sock")


def _redis_alive(socket_path: Path) -> bool:
    from wa_tasks.infra.redis_server import ping

    return socket_path.exists() and ping(socket_path)


def test_the_demo_delivers_every_message_exactly_once(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["WA_DATA_DIR"] = str(tmp_path / "var")

    result = subprocess.run(
        [str(ROOT / "dev"), "demo", "--count", "8", "--pace", "0.3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "every message was received exactly once" in result.stdout
    assert "dropped" in result.stdout  # the failover happened
    assert "demo-1" in result.stdout and "demo-2" in result.stdout
