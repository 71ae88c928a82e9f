"""A running wa-tasks stack for tests: a real Celery worker and a real session host as child
processes, on a real Redis and a real database, driven through the thin client."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from models import Message
from models.db import session_scope
from sessions_host.transports.simnet import LedgerEntry, SimNet
from support.cli import exec_argv
from wa_tasks.admin import session_config as manage
from wa_tasks.client import Client
from wa_tasks.core import redis_keys
from wa_tasks.infra.celery_app import make_app
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

#: Statuses a message does not leave by itself.
FINAL = ("sent", "delivered", "read", "failed")


def settings_env(settings: Settings) -> dict[str, str]:
    """``WA_*`` variables that reproduce ``settings`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WA_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"WA_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class Stack:
    def __init__(self, settings: Settings, logdir: Path) -> None:
        self.settings = settings
        self.logdir = logdir
        self.env = settings_env(settings)
        self.client = Client(settings)
        self.app: Celery = make_app(settings)
        self.redis = client_for(settings.redis)
        self.simnet = SimNet(client_for(settings.sim_redis))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # Processes -----------------------------------------------------------------------------------

    def start(self, *names: str) -> None:
        for name in names or ("worker", "sessions"):
            self.start_process(name)
        if "worker" in (names or ("worker",)):
            self.wait_for_worker()

    def start_process(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        if name == "worker":
            sub = ["worker", "-c", "2"]
        elif name == "urgent":  # the Procfile's worker kept for urgent dispatches
            sub = ["worker", "--queues", "wa.urgent", "-c", "1", "--name", "urgent"]
        elif name == "webhooks":  # the Procfile's worker of the status events' queue
            sub = ["worker", "--queues", "wa.webhooks", "-c", "1", "--name", "webhooks"]
        elif name.startswith("sessions"):
            sub = ["sessions", "--hostname", f"{name}@test"]
        else:
            sub = [name]
        if sub[0] == "worker":
            # What `wa-tasks worker` execs, started at once: the command itself only builds Celery's
            # command line, and a child process of its own would import wa_tasks for nothing first.
            argv = exec_argv(self.env, [*sub, *args])
        else:
            argv = [sys.executable, "-m", "wa_tasks", *sub, *args]
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes[name] = proc
        return proc

    def wait_for_worker(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            replies = self.app.control.ping(timeout=0.5) or []
            if any(name.startswith("worker@") for reply in replies for name in reply):
                return
        raise AssertionError(f"the worker did not answer within {timeout}s\n{self.logs()}")

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"process {name} exited with {proc.returncode}\n{self.logs()}")

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        proc = self.processes.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"{name} did not stop within {timeout}s after signal {sig}") from None
        return proc.returncode

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill process ``name`` with ``sig`` (default SIGKILL: no cleanup at all) and start it again."""
        proc = self.processes.pop(name)
        proc.send_signal(sig)
        proc.wait()
        self.start_process(name)

    @contextlib.contextmanager
    def beat(self, task: str = "wa.sweep", every: float = 1.0) -> Iterator[None]:
        """Send ``task`` every ``every`` seconds while the block runs, as beat would (beat's own
        period for the sweeper is a minute), with the options of its beat entry: without its
        priority a task lands on Redis' highest step, and sweeps sent every second would starve
        the dispatches they republish. A broker outage skips beats; it does not end them."""
        stopping = threading.Event()
        entry = next((e for e in self.app.conf.beat_schedule.values() if e["task"] == task), {})
        options = dict(entry.get("options", {}))

        def run() -> None:
            while not stopping.wait(every):
                with contextlib.suppress(Exception):
                    self.app.send_task(task, **options)

        thread = threading.Thread(target=run, name=f"beat-{task}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopping.set()
            thread.join(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every process: SIGTERM to all at once, then wait for each (a host's clean shutdown
        takes seconds; one after the other, each test would wait for the sum). A process still
        running after ``timeout`` is killed."""
        stopping = {name: self.processes.pop(name) for name in list(self.processes)}
        for proc in stopping.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in stopping.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        out = []
        for path in sorted(self.logdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-60:]
            out.append(f"==== {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def log_text(self, name: str) -> str:
        """The whole log of one process (``worker``, ``sessions``, …); empty before it starts."""
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, name: str, text: str, timeout: float = 20.0) -> None:
        """Wait until process ``name`` has logged ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not log {text!r} within {timeout}s\n{self.logs()}")
            time.sleep(0.1)

    # Sessions ------------------------------------------------------------------------------------

    def add_session(self, session_id: str, priority: int, **kwargs: Any) -> str:
        return manage.add(
            self.settings, device_id=session_id.upper(), session_id=session_id, priority=priority, **kwargs
        )

    def wait_connected(self, *session_ids: str, timeout: float = 30.0) -> None:
        self.wait_live(session_ids, lambda s: s is not None and s.connected, "connected", timeout)

    def wait_down(self, *session_ids: str, timeout: float = 30.0) -> None:
        self.wait_live(session_ids, lambda s: s is None or not s.connected, "down", timeout)

    def wait_live(self, session_ids: tuple[str, ...], ok: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            states = live_state.read(self.redis, session_ids)
            if all(ok(states.get(s)) for s in session_ids):
                return
            time.sleep(0.1)
        raise AssertionError(f"sessions {session_ids} not {what} within {timeout}s\n{self.logs()}")

    # Messages ------------------------------------------------------------------------------------

    def wait_status(self, message_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.client.status(message_id)
            if status["status"] in statuses:
                return status
            time.sleep(0.05)
        self.check_alive()
        raise AssertionError(f"{message_id} is {status.get('status')}, not {statuses}, after {timeout}s\n{self.logs()}")

    def wait_all(self, ids: list[str], *statuses: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        return [self.wait_status(i, *statuses, timeout=timeout) for i in ids]

    def statuses(self) -> Counter[str]:
        """How many messages are in each status. Read again on a new connection when this process'
        pooled one was dropped under it (the PostgreSQL drill terminates every backend but its own)."""
        try:
            with self.db() as db:
                return Counter(db.scalars(select(Message.status)).all())
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            with self.db() as db:  # the pool replaced every connection it had
                return Counter(db.scalars(select(Message.status)).all())

    def wait_final(self, total: int, timeout: float = 120.0) -> list[Message]:
        """Wait until ``total`` messages are sent, delivered, read or failed; returns every row."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            if sum(n for s, n in statuses.items() if s in FINAL) >= total:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"not final after {timeout}s: {dict(statuses)}\n{self.logs()}")
            time.sleep(0.5)
        with self.db() as db:
            return list(db.scalars(select(Message)).all())

    def wait_ledger(self, count: int, timeout: float = 60.0) -> None:
        """Wait until the simulated network has accepted ``count`` messages."""
        deadline = time.monotonic() + timeout
        while self.simnet.redis.llen(redis_keys.SIM_LEDGER) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"ledger stuck below {count}\n{self.logs()}")
            time.sleep(0.05)

    def ledger(self, number: str | None = None) -> list[LedgerEntry]:
        return self.simnet.ledger(number)

    def db(self) -> Any:
        return session_scope(self.settings.database)

    def queue_length(self, queue: str) -> int:
        return sum(int(self.redis.llen(queue if p == 0 else f"{queue}:{p}")) for p in range(10))
