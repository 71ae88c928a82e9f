"""The drop-in endpoints on a real ``wa-tasks web`` process: what a MikroTik ``/tool fetch`` or a
phpnuxbill gateway URL does (a GET with a send-scoped key in the URL) queues the message, and the
key is nowhere in the process's log although uvicorn logs every request line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models import Message
from models.db import session_scope
from support.web import API_KEY, running_web
from wa_tasks.admin import api_keys
from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import Settings


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with running_web(settings, tmp_path / "logs") as base:
        yield base, tmp_path / "logs" / "web.log"


def _logged(log: Path, what: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if what in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{what!r} not in the web log within {timeout}s:\n{log.read_text(errors='replace')}")


def test_a_get_with_a_send_key_in_the_url_queues_and_the_key_stays_out_of_the_log(
    settings: Settings, web: tuple[str, Path]
) -> None:
    base, log = web
    _row, key = api_keys.create(settings, "send", "router-1")
    text = "Pelanggan budi di-isolir (profil isolir) & belum bayar"
    answer = httpx.get(
        f"{base}/compat/gateway/send", params={"key": key, "number": "0812-3456-7890", "text": text}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] is True
    with session_scope(settings.database) as db:
        message = db.get(Message, body["id"])
        assert message is not None
        assert (message.to_number, message.status) == ("6281234567890", "queued")

    # The same key on a route that manages sessions: refused.
    refused = httpx.delete(f"{base}/api/whatsapp/sessions/wa-1", headers={"X-API-Key": key}, timeout=30)
    assert refused.status_code == 403, refused.text
    # The Fonnte shape with the key in the query string too, and the full key as ?token=.
    fonnte = httpx.post(
        f"{base}/compat/fonnte/send?token={API_KEY}", data={"target": "081234567891", "message": "b"}, timeout=30
    )
    assert fonnte.status_code == 200 and fonnte.json()["status"] is True, fonnte.text

    logged = _logged(log, "/compat/fonnte/send")
    assert "GET /compat/gateway/send?key=***&number=" in logged
    assert key not in logged and key[len(api_keys.KEY_PREFIX) :] not in logged
    assert API_KEY not in logged.replace("WA_API_KEY", "")


def test_a_fonnte_schedule_is_stored_scheduled_and_a_send_key_past_its_rate_limit_gets_429(
    settings: Settings, tmp_path: Path
) -> None:
    limited = settings.model_copy(update={"api_rate_limit_per_minute": 2})
    row, key = api_keys.create(limited, "send", "phpnuxbill")
    at = int(time.time()) + 7200
    with running_web(limited, tmp_path / "logs") as base:
        scheduled = httpx.post(
            f"{base}/compat/fonnte/send",
            data={"target": "081234567890", "message": "Pengingat H-1", "schedule": str(at)},
            headers={"Authorization": key},
            timeout=30,
        )
        assert scheduled.status_code == 200, scheduled.text
        second = httpx.get(
            f"{base}/compat/gateway/send", params={"key": key, "number": "081234567891", "text": "x"}, timeout=30
        )
        assert second.status_code == 200, second.text
        third = httpx.get(
            f"{base}/compat/gateway/send", params={"key": key, "number": "081234567892", "text": "y"}, timeout=30
        )

    [message_id] = scheduled.json()["id"]
    with session_scope(settings.database) as db:
        message = db.get(Message, message_id)
        assert message is not None and message.status == "scheduled"
        assert message.send_at is not None and int(message.send_at.timestamp()) == at
        assert db.query(Message).count() == 2  # the refused request queued nothing
    assert third.status_code == 429 and third.headers["Retry-After"].isdigit()
    assert third.json()["status"] is False and "WA_API_RATE_LIMIT_PER_MINUTE" in third.json()["reason"]
    redis = client_for(settings.redis)
    assert redis.zcard(redis_keys.api_rate(row["id"])) == 2  # counted under the key's id
