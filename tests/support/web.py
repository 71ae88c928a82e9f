"""``wa-tasks web`` as a real child process on a free port, for the API, fuzzing and browser tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.stack import settings_env
from support.workers import free_port
from wa_tasks.settings import Settings

#: The API key the test web processes are started with.
API_KEY = "k-test"


@dataclass(frozen=True)
class WebProcess:
    base: str
    port: int
    pid: int


@contextlib.contextmanager
def running_web(settings: Settings, logdir: Path, api_key: str | None = API_KEY) -> Iterator[str]:
    """Start ``wa-tasks web`` with ``settings`` (and ``api_key``), wait for ``/health``, yield its base URL."""
    with running_web_process(settings, logdir, api_key) as web:
        yield web.base


@contextlib.contextmanager
def running_web_process(settings: Settings, logdir: Path, api_key: str | None = API_KEY) -> Iterator[WebProcess]:
    """As ``running_web``, yielding the process too (its port and pid)."""
    port = free_port()
    env = {**settings_env(settings), "WA_WEB_PORT": str(port)}
    if api_key is not None:
        env["WA_API_KEY"] = api_key
    logdir.mkdir(parents=True, exist_ok=True)
    logfile = logdir / "web.log"
    log = logfile.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wa_tasks", "web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"wa-tasks web did not start:\n{logfile.read_text(errors='replace')}")
            time.sleep(0.2)
        yield WebProcess(base, port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
