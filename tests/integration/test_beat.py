"""Two real beat processes on one Redis: each scheduled job is sent once per period, and the
survivor keeps the schedule when one beat stops."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from support.stack import settings_env
from wa_tasks.core.redis_keys import DEFAULT_QUEUE
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

#: The health check's period in this test (production: 30 s).
PERIOD = 1.0


def _sent(redis: redis_lib.Redis, task: str) -> int:
    """``task`` messages waiting on the worker's queue (no worker runs here), all priority lists."""
    total = 0
    for step in range(10):
        for body in redis.lrange(DEFAULT_QUEUE if step == 0 else f"{DEFAULT_QUEUE}:{step}", 0, -1):
            total += json.loads(body)["headers"]["task"] == task
    return total


def _clear(redis: redis_lib.Redis) -> None:
    redis.delete(*(DEFAULT_QUEUE if step == 0 else f"{DEFAULT_QUEUE}:{step}" for step in range(10)))


@pytest.fixture
def settings(redis_clean: str, tmp_path: Path) -> Settings:
    """Beat needs only Redis (the jobs it sends are not run here)."""
    return Settings(redis_url=redis_clean, data_dir=tmp_path / "var")


@pytest.fixture
def beats(settings: Settings, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two ``wa-tasks beat`` processes, each with its own schedule file, on the same Redis."""
    procs = []
    for n in (1, 2):
        env = {
            **settings_env(settings),
            "WA_DATA_DIR": str(tmp_path / f"beat{n}"),
            "WA_HEALTH_CHECK_SECONDS": str(PERIOD),
        }
        log = (tmp_path / f"beat{n}.log").open("wb")
        argv = [sys.executable, "-m", "wa_tasks", "beat"]
        procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"==== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(tmp_path.glob("*.log")))


def test_two_beats_send_each_job_once_per_period(
    settings: Settings, beats: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    redis = client_for(settings.redis)
    # Given two beats that both run (each has sent or skipped the health check at least once)
    deadline = time.monotonic() + 30
    while _sent(redis, "wa.health_check") < 3:
        assert all(p.poll() is None for p in beats) and time.monotonic() < deadline, _logs(tmp_path)
        time.sleep(0.1)

    # When they run side by side for a while
    _clear(redis)
    window = 8.0
    time.sleep(window)
    count = _sent(redis, "wa.health_check")

    # Then the job was sent once per period, not once per beat and period
    assert window / PERIOD - 2 <= count <= window / (0.9 * PERIOD) + 1, (count, _logs(tmp_path))
    logs = _logs(tmp_path)
    assert "already sent by another beat" in logs, logs  # they did compete
    assert all(p.poll() is None for p in beats), logs

    # When one beat stops, the other keeps the schedule
    beats[0].terminate()
    beats[0].wait(15)
    _clear(redis)
    time.sleep(4.0)
    assert 4.0 / PERIOD - 2 <= _sent(redis, "wa.health_check") <= 4.0 / (0.9 * PERIOD) + 1, _logs(tmp_path)
