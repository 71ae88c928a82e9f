"""Operating sessions on a real stack: QR in the terminal and pairing by code, logout and re-pairing,
a temporary ban, and the health check beat task (which messages nobody)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from models import WhatsAppSession
from support.stack import Stack
from support.web import running_web
from wa_tasks.admin import session_config
from wa_tasks.errors import HostUnavailable
from wa_tasks.infra import session_control
from wa_tasks.infra.redis_client import database_of
from wa_tasks.ops import health
from wa_tasks.pipeline import live_state

pytestmark = pytest.mark.integration


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wa_tasks", *args], env=stack.env, capture_output=True, text=True, timeout=120
    )


def test_qr_in_the_terminal_pairing_by_code_then_linked(stack: Stack) -> None:
    # Given a session that waits to be linked
    stack.add_session("wa-1", priority=1, options={"auto_pair": False})
    stack.start()
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "qr", "showing a QR code", 30)

    # Then its QR code prints in the terminal, and a pairing code can be asked for instead
    shown = _cli(stack, "sessions", "qr", "wa-1", "--once")
    assert shown.returncode == 0, shown.stderr
    assert "▀" in shown.stdout or "█" in shown.stdout  # drawn with block characters
    assert "Link a device" in shown.stdout
    paired = _cli(stack, "sessions", "pair", "wa-1", "--phone", "0812-3456-7890")
    assert paired.returncode == 0, paired.stderr
    code = paired.stdout.strip().split()[-1]
    assert len(code) == 8 and code.isalnum()

    # When the phone confirms, the session connects and `sessions qr` says so
    stack.simnet.scan("wa-1")
    stack.wait_connected("wa-1")
    linked = _cli(stack, "sessions", "qr", "wa-1", "--timeout", "10")
    assert linked.returncode == 0 and "linked and connected" in linked.stdout
    assert _cli(stack, "sessions", "qr", "wa-1", "--once").returncode == 0  # linked: nothing to scan


def test_a_logged_out_session_sends_nothing_until_it_is_linked_again(stack: Stack) -> None:
    stack.add_session("wa-1", priority=1, options={"auto_pair": False, "qr_rotate_seconds": 5})
    stack.start()
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "qr", "showing a QR code", 30)
    stack.simnet.scan("wa-1")
    stack.wait_connected("wa-1")

    # When the operator logs it out
    out = _cli(stack, "sessions", "logout", "wa-1")
    assert out.returncode == 0, out.stderr
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "logged_out", "logged out", 15)

    # Then a message waits instead of being sent
    message_id = stack.client.send("081234567890", text="Menunggu")
    time.sleep(3.0)
    assert stack.client.status(message_id)["status"] in ("queued", "routed")
    assert stack.ledger() == []

    # Until it is reconnected and linked again with a new QR code
    assert _cli(stack, "sessions", "reconnect", "wa-1").returncode == 0
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "qr", "showing a new QR code", 30)
    stack.simnet.scan("wa-1")
    stack.wait_status(message_id, "sent", "delivered", "read", timeout=30)
    assert len(stack.ledger()) == 1

    # And removing the session unlinks its device first
    removed = _cli(stack, "sessions", "remove", "wa-1")
    assert removed.returncode == 0, removed.stderr
    assert "device of wa-1 unlinked" in removed.stdout and "removed wa-1" in removed.stdout
    assert stack.simnet.device_number("wa-1") is None


def test_a_banned_session_sends_nothing_until_its_ban_has_passed(stack: Stack) -> None:
    # Given ban safety on, and a number that WhatsApp bans for a few seconds after a burst
    stack.env.update({"WA_SAFETY_ENABLED": "true", "WA_BAN_MARGIN_SECONDS": "1"})
    stack.add_session(
        "wa-1",
        priority=1,
        pace_seconds=0.05,
        options={"ban_model": True, "ban_rules": {"burst_sends": 2, "burst_seconds": 10, "ban_seconds": 4}},
    )
    stack.start()
    stack.wait_connected("wa-1")

    # When a burst earns a ban
    ids = [stack.client.send(f"0812{i:08d}", text=f"pesan {i}") for i in range(6)]
    stack.wait_live(("wa-1",), lambda s: s is not None and s.available_until > time.time(), "out of rotation", 30)
    banned_at = time.time()
    until = live_state.read(stack.redis, ["wa-1"])["wa-1"].available_until

    # Then nothing is sent until the ban (4 s) and the margin (1 s) have passed, and then all go, once
    stack.wait_all(ids, "sent", "delivered", "read", timeout=60)
    ledger = stack.ledger()
    assert until >= banned_at + 3
    during_ban = [e for e in ledger if banned_at + 0.5 < _ts(e.at) < until - 0.2]
    assert during_ban == []
    assert max(Counter(e.text for e in ledger).values()) == 1
    assert len(ledger) == 6


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_the_health_check_records_probes_and_reconnects_a_failing_session(stack: Stack) -> None:
    # Given a connected session, an offline one, and a connected one past 5 errors in a row
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2)
    stack.add_session("wa-3", priority=3)
    stack.simnet.drop("wa-2")
    stack.start()
    stack.wait_connected("wa-1", "wa-3")
    with stack.db() as db:
        db.execute(update(WhatsAppSession).where(WhatsAppSession.session_id == "wa-3").values(error_count=6))

    # When beat's health check runs (here published by hand, executed by the real worker)
    stack.app.send_task("wa.health_check")

    # Then each row records what was found, visible in `sessions list`
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with stack.db() as db:
            health = dict(db.execute(select(WhatsAppSession.session_id, WhatsAppSession.health)).all())
        if all(health.values()):
            break
        time.sleep(0.2)
    assert health == {"wa-1": "ok", "wa-2": "offline", "wa-3": "failing"}, stack.logs()
    with stack.db() as db:
        probe_ms = db.scalar(select(WhatsAppSession.last_probe_ms).where(WhatsAppSession.session_id == "wa-1"))
    assert probe_ms is not None and probe_ms > 0
    listed = {s["id"]: s for s in json.loads(_cli(stack, "sessions", "list", "--json").stdout)["sessions"]}
    assert listed["wa-3"]["health"] == "failing" and "reconnecting" in listed["wa-3"]["healthDetail"]
    # And the failing session was reconnected by its host; the probe messaged nobody
    assert "command reconnect on session wa-3: ok" in (stack.logdir / "sessions.log").read_text()
    assert stack.ledger() == []


def test_a_command_reaches_only_the_hosts_of_its_own_redis_database(stack: Stack) -> None:
    # Given a host running wa-1 on the test's Redis database
    stack.add_session("wa-1", priority=1)
    stack.start("sessions")
    stack.wait_connected("wa-1")

    # When another installation on the same Redis server, but another database, logs out its own wa-1
    db = database_of(stack.redis)
    server = stack.settings.redis.rsplit("/", 1)[0]  # redis://host:port/N
    other = stack.settings.model_copy(update={"redis_url": f"{server}/{15 if db != 15 else 14}"})
    with pytest.raises(HostUnavailable, match="no session host is running"):
        session_control.request(other, "wa-1", "logout", timeout=5)

    # Then this installation's wa-1 stays linked and connected
    time.sleep(1.0)
    assert "command logout" not in stack.log_text("sessions")
    assert live_state.read(stack.redis, ["wa-1"])["wa-1"].connected
    assert session_control.request(stack.settings, "wa-1", "probe", timeout=15)["ok"]


def test_a_session_removed_and_added_again_under_its_id_starts_afresh(stack: Stack) -> None:
    # Given a connected session (paired automatically, as the simulator does by default)
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")

    # When the operator removes it (its device is unlinked) and at once adds it again under that id
    removal = session_config.unlink_and_remove(stack.settings, "wa-1")
    assert removal.unlinked, removal.unlink_error
    stack.add_session("wa-1", priority=1)

    # Then it pairs and connects like any new session, without `sessions reconnect`
    stack.wait_connected("wa-1")
    message_id = stack.client.send("081234567890", text="Setelah ditambah lagi")
    stack.wait_status(message_id, "sent", "delivered", "read")
    assert "command reconnect" not in stack.log_text("sessions")


def test_a_session_checked_before_it_connected_shows_its_health_check_pending(stack: Stack, tmp_path: Path) -> None:
    # Given a session checked by the health check before its host was up (found offline) ...
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2)
    assert [r.health for r in health.check_all(stack.settings)] == ["offline", "offline"]
    with stack.db() as db:  # ... and one never checked at all
        db.execute(update(WhatsAppSession).where(WhatsAppSession.session_id == "wa-2").values(health=None))

    # When the host connects both
    stack.start("sessions")
    stack.wait_connected("wa-1", "wa-2")

    # Then the API, the CLI and the sessions page say the check is pending, not "offline"
    with running_web(stack.settings, tmp_path / "web-logs", api_key=None) as web:
        listed = {s["id"]: s for s in httpx.get(f"{web}/api/whatsapp/sessions").json()["sessions"]}
        page = httpx.get(f"{web}/sessions").text
    assert {s: (listed[s]["status"], listed[s]["health"]) for s in listed} == {
        "wa-1": ("connected", "pending"),
        "wa-2": ("connected", "pending"),
    }
    assert listed["wa-1"]["healthDetail"] == "the first check since it became connected is due within 30 s"
    assert listed["wa-2"]["healthDetail"] == "not checked yet; the health check runs every 30 s"
    assert page.count(">pending</span>") == 2 and "no session host reports it" not in page
    cli = subprocess.run(
        [sys.executable, "-m", "wa_tasks", "sessions", "list"],
        env={**stack.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and cli.stdout.count(" pending ") == 2 and "offline" not in cli.stdout, cli.stdout

    # And the next check tells how they are
    stack.start("worker")
    assert {r.session_id: r.health for r in health.check_all(stack.settings)} == {"wa-1": "ok", "wa-2": "ok"}
    assert [s["health"] for s in session_config.listing(stack.settings)] == ["ok", "ok"]
