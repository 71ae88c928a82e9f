"""What every benchmark shares: a private Redis, a reset database, the real worker and session host
as child processes (the test suite's ``Stack``), a description of the machine, and the JSON report."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_lib
from sqlalchemy import make_url, text

from models.db import create, dispose_all
from models.migrate import upgrade
from wa_tasks.infra.redis_server import EmbeddedRedis
from wa_tasks.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
#: The database benchmarks use unless ``WA_BENCH_DATABASE_URL`` says otherwise (never ``test``).
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"

# The test suite's process harness is reused as is rather than copied.
sys.path.insert(0, str(ROOT / "tests"))
from support.stack import Stack  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    url = os.environ.get("WA_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    if url.rstrip("/").endswith("/test"):
        raise SystemExit("refusing to use the database named 'test' (the CI database); set WA_BENCH_DATABASE_URL")
    return url


def _create_database_if_missing(url: str) -> None:
    """A fresh machine has no ``bench`` database: create it, from the server's ``postgres`` one."""
    target = make_url(url)
    admin = create(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database})
            if exists.scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


def reset_database(url: str) -> None:
    """Drop everything in ``url`` and migrate it to the latest schema."""
    if url.startswith("postgresql"):
        _create_database_if_missing(url)
        engine = create(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)


@dataclass
class Environment:
    """A private Redis and a reset database for one benchmark run."""

    workdir: Path
    redis_url: str
    database_url: str
    redis_server: EmbeddedRedis

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "data_dir": self.workdir / "var",
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(**values)

    def stack(self, settings: Settings, name: str = "stack") -> Stack:
        logdir = self.workdir / f"logs-{name}"
        logdir.mkdir(exist_ok=True)
        return Stack(settings, logdir)

    @property
    def redis(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.redis_url)


@contextlib.contextmanager
def environment(keep: bool = False) -> Iterator[Environment]:
    workdir = Path(tempfile.mkdtemp(prefix="wa-bench-"))
    port = free_port()
    server = EmbeddedRedis(workdir / "redis", persistent=False, port=port)
    server.start()
    url = database_url()
    reset_database(url)
    try:
        yield Environment(workdir, f"redis://127.0.0.1:{port}/0", url, server)
    finally:
        dispose_all()
        server.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def running(stack: Stack, *names: str) -> Iterator[Stack]:
    """Start the stack's processes; stop them (and show their last log lines on failure) afterwards."""
    try:
        stack.start(*names)
        yield stack
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.stop()


# Figures -------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "min": min(values) if values else float("nan"),
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def parse_iso(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


# Machine and report --------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except (ImportError, AttributeError):
        return "unknown"


def machine(env: Environment | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "celery": _version("celery"),
        "kombu": _version("kombu"),
        "redis_py": _version("redis"),
        "sqlalchemy": _version("sqlalchemy"),
        "platform": platform.platform(),
    }
    if env is not None:
        with contextlib.suppress(redis_lib.RedisError):
            described["redis_server"] = env.redis.info("server").get("redis_version")
        described["database"] = env.database_url.split("://", 1)[0]
        if env.database_url.startswith("postgresql"):
            with contextlib.suppress(Exception):
                engine = create(env.database_url)
                with engine.connect() as conn:
                    described["postgresql"] = str(conn.execute(text("SHOW server_version")).scalar())
    return described


@dataclass
class Report:
    """A benchmark's figures; printed, then written as JSON."""

    name: str
    parameters: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "parameters": self.parameters,
            "figures": self.figures,
            "targets": self.targets,
            "notes": self.notes,
            "machine": self.machine,
        }

    def write(self, path: Path | None) -> Path:
        path = path or RESULTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=False, default=str) + "\n")
        tmp.replace(path)
        return path

    def print(self) -> None:
        print(f"== {self.name}  {json.dumps(self.parameters)}")
        for key, value in self.figures.items():
            if isinstance(value, list):
                continue  # long tables (profiles) are printed by their benchmark and kept in the JSON
            print(f"  {key}: {_fmt(value)}")
        for key, value in self.targets.items():
            print(f"  target {key}: {_fmt(value)}")
        for note in self.notes:
            print(f"  note: {note}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def wait_until(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f}s")


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid Indonesian mobile numbers (0812 xxxx xxxx)."""
    return [f"0812{i:08d}" for i in range(start, start + count)]
