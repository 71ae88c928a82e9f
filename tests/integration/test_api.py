"""The HTTP API over real HTTP: ``wa-tasks web`` as a child process, in front of a real worker and
session host (``Stack``), a real Redis and a real database (SQLite and PostgreSQL).

Each test drives a whole operator story through the API and checks the outcome where it
happens: the recipient-side ledger of the simulated network, the rows, the broker's lists."""

from __future__ import annotations

import base64
import datetime as dt
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import make_settings
from support.stack import Stack
from support.web import API_KEY, running_web
from wa_tasks.core import qr as qr_codes
from wa_tasks.core import redis_keys
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

PREFIX = "/api/whatsapp"


@pytest.fixture(scope="module")
def shared_web(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    """One ``wa-tasks web`` for the module's tests on each database (a start costs seconds): the web
    process keeps nothing between requests but its connections, and each test empties the database
    and Redis it reads (``settings``)."""
    folder = tmp_path_factory.mktemp("api")
    settings = make_settings(database_url, redis_url, folder / "var")
    with running_web(settings, folder / "logs") as base:
        yield settings, base


@pytest.fixture
def settings(shared_web: tuple[Settings, str], database: str, redis_clean: str) -> Settings:
    """The web process' settings, on a database and Redis emptied for this test (the stack's
    worker and session host run with them too)."""
    return shared_web[0]


@pytest.fixture
def web(shared_web: tuple[Settings, str], settings: Settings, request: pytest.FixtureRequest) -> Iterator[str]:
    log = settings.data_dir.parent / "logs" / "web.log"
    start = log.stat().st_size if log.exists() else 0
    yield shared_web[1]
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:  # what the web process logged during this test
        with log.open("rb") as lines:
            lines.seek(start)
            print("==== web.log\n" + lines.read().decode(errors="replace"))


@pytest.fixture
def api(web: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{web}{PREFIX}", headers={"X-API-Key": API_KEY}, timeout=30) as client:
        yield client


def _until(what: str, check: Callable[[], Any], timeout: float = 30.0, stack: Stack | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout}s" + (f"\n{stack.logs()}" if stack else ""))


def _status(api: httpx.Client, message_id: str) -> dict[str, Any]:
    response = api.get(f"/message/{message_id}/status")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait_status(api: httpx.Client, stack: Stack, message_id: str, *statuses: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = _status(api, message_id)
        return status if status["status"] in statuses else None

    return dict(_until(f"{message_id} {statuses}", reached, stack=stack))


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = dict(response.json())
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"]
    return body


# Auth --------------------------------------------------------------------------------------------


def test_every_route_but_health_needs_the_key(settings: Settings, web: str, tmp_path: Path) -> None:
    assert httpx.get(f"{web}/health").json()["status"] == "ok"
    for path in (f"{PREFIX}/sessions", f"{PREFIX}/messages", f"{PREFIX}/queue", f"{PREFIX}/templates", "/openapi.json"):
        assert httpx.get(f"{web}{path}").status_code == 401, path
        assert httpx.get(f"{web}{path}", headers={"X-API-Key": "wrong"}).status_code == 401, path
        assert httpx.get(f"{web}{path}", headers={"X-API-Key": API_KEY}).status_code == 200, path
    refused = _error(httpx.post(f"{web}{PREFIX}/send", json={"to": "081234567890", "text": "x"}), 401)
    assert "X-API-Key" in refused["detail"]
    # A bearer token works too (what a Prometheus scrape sends)
    assert httpx.get(f"{web}{PREFIX}/sessions", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    # The docs need a login: a browser is sent to the login page
    docs = httpx.get(f"{web}/docs", follow_redirects=False)
    assert docs.status_code == 303 and docs.headers["location"].startswith("/login")

    # The schema lists every path billing systems call, with the key as its security scheme
    schema = httpx.get(f"{web}/openapi.json", headers={"X-API-Key": API_KEY}).json()
    for path in ("/sessions", "/sessions/{session_id}/qr", "/send", "/send-bulk", "/message/{message_id}/status",
                 "/templates", "/templates/preview"):  # fmt: skip
        assert f"{PREFIX}{path}" in schema["paths"], path
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"

    # Swagger UI's files are served by the process itself: no CDN
    with running_web(settings, tmp_path / "open", api_key=None) as open_web:
        page = httpx.get(f"{open_web}/docs")
        assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower()
        asset = httpx.get(f"{open_web}/docs-assets/swagger-ui-bundle.js")
        assert asset.status_code == 200 and len(asset.content) > 100_000
        redoc = httpx.get(f"{open_web}/redoc")
        assert redoc.status_code == 200 and "/docs-assets/redoc.standalone.js" in redoc.text


def test_an_unreachable_redis_or_database_is_a_503_that_says_so(settings: Settings, tmp_path: Path) -> None:
    key = {"X-API-Key": API_KEY}
    # Redis down: reads that need it say so; a send is stored and waits for the sweeper
    no_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with running_web(no_redis, tmp_path / "no-redis") as base:
        assert httpx.get(f"{base}/health").json() == {"status": "degraded", "database": True, "redis": False}
        down = _error(httpx.get(f"{base}{PREFIX}/queue", headers=key, timeout=30), 503)
        assert down["error"] == "redis_unavailable"
        sent = httpx.post(f"{base}{PREFIX}/send", json={"to": "081234567890", "text": "x"}, headers=key, timeout=30)
        assert sent.status_code == 202 and sent.json()["status"] == "queued"
    # Database down
    no_db = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/none"})
    with running_web(no_db, tmp_path / "no-db") as base:
        assert httpx.get(f"{base}/health").json()["database"] is False
        for path in ("/templates", "/messages", "/jobs"):
            down = _error(httpx.get(f"{base}{PREFIX}{path}", headers=key, timeout=30), 503)
            assert down["error"] == "database_unavailable" and "try again" in down["detail"], path


# Sessions ----------------------------------------------------------------------------------------


def test_add_a_session_scan_its_qr_code_send_a_template_then_remove_it(stack: Stack, api: httpx.Client) -> None:
    stack.start()

    # Given a session added through the API that waits to be linked
    created = api.post(
        "/sessions",
        json={"deviceId": "WA-1", "priority": 1, "sessionId": "wa-1", "options": {"auto_pair": False}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "wa-1" and created.json()["deviceId"] == "WA-1"
    assert created.json()["options"] == {"auto_pair": False}
    assert [s["id"] for s in api.get("/sessions").json()["sessions"]] == ["wa-1"]
    _error(api.post("/sessions", json={"deviceId": "WA-1", "priority": 1, "sessionId": "wa-1"}), 422)  # taken

    # When its QR code is asked for, it is a PNG of the code the session shows
    qr = _until("a QR code", lambda: (r := api.get("/sessions/wa-1/qr")).status_code == 200 and r.json(), stack=stack)
    assert qr["qr"].startswith("data:image/png;base64,")
    assert base64.b64decode(qr["qr"].split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    shown = stack.simnet.current_qr("wa-1")
    assert shown is not None and qr["qr"] == qr_codes.png_data_url(shown)
    assert 0 <= qr["expires"] <= 20

    # And a pairing code can be asked for instead
    paired = api.post("/sessions/wa-1/pair", json={"phone": "0812-3456-7890"})
    assert paired.status_code == 200, paired.text
    assert len(paired.json()["code"]) == 8 and paired.json()["code"].isalnum()
    _error(api.post("/sessions/wa-1/pair", json={"phone": "12"}), 422)

    # When the phone scans it, the session connects and there is nothing left to scan
    stack.simnet.scan("wa-1")
    stack.wait_connected("wa-1")
    linked = _error(api.get("/sessions/wa-1/qr"), 409)
    assert linked["error"] == "no_qr" and "connected" in linked["detail"]
    session = api.get("/sessions/wa-1").json()
    assert session["status"] == "connected" and session["isPrimary"] is True
    refused = _error(api.post("/sessions/wa-1/pair", json={"phone": "081234567890"}), 409)
    assert "pairing needs a session waiting for a QR scan" in refused["detail"]
    probe = api.post("/sessions/wa-1/probe")
    assert probe.status_code == 200 and probe.json()["latencyMs"] > 0

    # Then a template created through the API reaches the customer, and the status endpoint follows it
    template = api.post(
        "/templates",
        json={"name": "api_info", "content": "Halo {{ customer_name }}, tagihan {{ invoice_number }} terbit."},
    )
    assert template.status_code == 201, template.text
    assert sorted(template.json()["variables"]) == ["customer_name", "invoice_number"]
    sent = api.post(
        "/send",
        json={
            "to": "6281234567890@s.whatsapp.net",
            "template": "api_info",
            "data": {"customer_name": "Budi", "invoice_number": "INV-001"},
        },
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "queued"
    status = _wait_status(api, stack, sent.json()["id"], "delivered", "read")
    assert status["sessionId"] == "wa-1" and status["sentAt"] and status["deliveredAt"]
    assert [e.text for e in stack.ledger("6281234567890")] == ["Halo Budi, tagihan INV-001 terbit."]

    # When it is logged out it needs a reconnect and a new scan
    assert api.post("/sessions/wa-1/logout").status_code == 200
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "logged_out", "logged out", 15)
    assert api.post("/sessions/wa-1/reconnect").status_code == 200
    stack.wait_live(("wa-1",), lambda s: s is not None and s.status == "qr", "showing a new QR code", 30)
    assert _until("a new QR code", lambda: api.get("/sessions/wa-1/qr").status_code == 200, stack=stack)

    # And deleting it unlinks the device first, and it is gone
    stack.simnet.scan("wa-1")
    stack.wait_connected("wa-1")
    deleted = api.delete("/sessions/wa-1")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True and deleted.json()["deviceUnlinked"] is True
    assert stack.simnet.device_number("wa-1") is None
    _error(api.get("/sessions/wa-1"), 404)
    _error(api.delete("/sessions/wa-1"), 404)
    assert api.get("/sessions").json()["sessions"] == []


@pytest.mark.timing
def test_change_the_primary_and_the_pace_without_linking_again(stack: Stack, api: httpx.Client) -> None:
    # Given two connected sessions, wa-1 the primary
    for i in (1, 2):
        created = api.post("/sessions", json={"deviceId": f"WA-{i}", "priority": i, "sessionId": f"wa-{i}"})
        assert created.status_code == 201, created.text
    stack.start()
    stack.wait_connected("wa-1", "wa-2")
    first = api.post("/send", json={"to": "081200000001", "text": "Tagihan 1"}).json()["id"]
    assert _wait_status(api, stack, first, "sent", "delivered", "read")["sessionId"] == "wa-1"

    # When wa-2 is given the lowest priority
    changed = api.patch("/sessions/wa-2", json={"priority": 0})
    assert changed.status_code == 200, changed.text
    assert changed.json()["priority"] == 0 and changed.json()["isPrimary"] is True

    # Then it is the primary at once, and the next message goes through it
    assert [s["isPrimary"] for s in api.get("/sessions").json()["sessions"] if s["id"] == "wa-1"] == [False]
    second = api.post("/send", json={"to": "081200000002", "text": "Tagihan 2"}).json()["id"]
    assert _wait_status(api, stack, second, "sent", "delivered", "read")["sessionId"] == "wa-2"

    # When wa-2's pace is set to 3 s, Then its host applies it without reconnecting it
    connected_since = live_state.read(stack.redis, ["wa-2"])["wa-2"].since
    changed = api.patch("/sessions/wa-2", json={"paceSeconds": 3})
    assert changed.status_code == 200 and changed.json()["paceSeconds"] == 3.0, changed.text
    stack.wait_for_log("sessions", "session wa-2: now 3.00s between sends", timeout=30)
    assert live_state.read(stack.redis, ["wa-2"])["wa-2"].since == connected_since
    # And sends by it: two messages at least 3 s apart
    ids = [
        api.post("/send", json={"to": f"08120000001{i}", "text": "Voucher", "sessionId": "wa-2"}).json()["id"]
        for i in range(2)
    ]
    for message_id in ids:
        _wait_status(api, stack, message_id, "sent", "delivered", "read")
    sent_at = sorted(dt.datetime.fromisoformat(e.at) for e in stack.ledger() if e.text == "Voucher")
    assert len(sent_at) == 2
    assert (sent_at[1] - sent_at[0]).total_seconds() >= 2.9, sent_at

    # And the device stayed linked throughout; null puts the pace back to the default
    assert stack.simnet.device_number("wa-2") is not None
    reset = api.patch("/sessions/wa-2", json={"paceSeconds": None})
    assert reset.status_code == 200 and reset.json()["paceSeconds"] is None and reset.json()["priority"] == 0

    # When the operator says the number has been on WhatsApp since 2019, Then its host warms it up by that age
    aged = api.patch("/sessions/wa-2", json={"numberSince": "2019-05-01"})
    assert aged.status_code == 200 and aged.json()["numberSince"] == "2019-05-01", aged.text
    stack.wait_for_log("sessions", "session wa-2: number ", timeout=30)
    logged = re.search(r"session wa-2: number (\d+) days old", stack.log_text("sessions"))
    expected = (dt.datetime.now(dt.UTC) - dt.datetime(2019, 5, 1, tzinfo=dt.UTC)).total_seconds() / 86400
    assert logged is not None and abs(int(logged.group(1)) - expected) <= 1, logged
    assert live_state.read(stack.redis, ["wa-2"])["wa-2"].since == connected_since
    assert api.patch("/sessions/wa-2", json={"numberSince": None}).json()["numberSince"] is None

    # And bad changes say what was wrong
    assert "in the future" in _error(api.patch("/sessions/wa-2", json={"numberSince": "2999-01-01"}), 422)["detail"]
    assert "numberSince" in _error(api.patch("/sessions/wa-2", json={"numberSince": "15-03-2021"}), 422)["detail"]
    assert "nothing to change" in _error(api.patch("/sessions/wa-2", json={}), 422)["detail"]
    assert "priority" in _error(api.patch("/sessions/wa-2", json={"priority": -1}), 422)["detail"]
    assert "paceSeconds" in _error(api.patch("/sessions/wa-2", json={"paceSeconds": "fast"}), 422)["detail"]
    _error(api.patch("/sessions/wa-2", json={"priority": 1, "bogus": 1}), 422)
    _error(api.patch("/sessions/wa-9", json={"priority": 1}), 404)


def test_commands_to_a_session_no_host_runs_answer_503_and_unknown_ones_404(api: httpx.Client) -> None:
    # Given a configured session and no session host running
    assert api.post("/sessions", json={"deviceId": "WA 9", "priority": 9}).status_code == 201
    assert api.get("/sessions/wa-9").json()["status"] == "offline"

    started = time.monotonic()
    for action in ("logout", "reconnect", "probe"):
        down = _error(api.post(f"/sessions/wa-9/{action}"), 503)
        assert down["error"] == "host_unavailable" and "wa-tasks sessions" in down["detail"]
    _error(api.post("/sessions/wa-9/pair", json={"phone": "081234567890"}), 503)
    assert time.monotonic() - started < 5  # refused at once, not after a timeout
    offline = _error(api.get("/sessions/wa-9/qr"), 409)
    assert "no session host runs it" in offline["detail"]

    for method, path in (
        ("GET", "/sessions/nope"),
        ("GET", "/sessions/nope/qr"),
        ("DELETE", "/sessions/nope"),
        ("POST", "/sessions/nope/logout"),
        ("POST", "/sessions/nope/reconnect"),
        ("GET", "/message/msg_nope/status"),
        ("POST", "/message/msg_nope/retry"),
        ("POST", "/message/msg_nope/cancel"),
        ("GET", "/jobs/job_nope"),
        ("POST", "/jobs/job_nope/cancel"),
        ("GET", "/templates/nope"),
        ("PUT", "/templates/nope"),
        ("DELETE", "/templates/nope"),
    ):
        response = api.request(method, path, json={} if method == "PUT" else None)
        assert "nope" in _error(response, 404)["detail"], (method, path)

    # A removed session's device is left as it is when no host runs it
    deleted = api.delete("/sessions/wa-9")
    assert deleted.status_code == 200 and deleted.json()["deviceUnlinked"] is False


def test_a_host_that_stops_answering_is_a_503_not_a_hang(stack: Stack, api: httpx.Client) -> None:
    # Given a connected session whose session host then freezes (still subscribed, never answers)
    stack.add_session("wa-1", priority=1)
    stack.start()
    stack.wait_connected("wa-1")
    host = stack.processes["sessions"]
    host.send_signal(signal.SIGSTOP)
    try:
        # Then a command is answered 503 within the API's command timeout, with what to check
        started = time.monotonic()
        frozen = _error(api.post("/sessions/wa-1/reconnect"), 503)
        assert frozen["error"] == "host_unavailable"
        assert "no session host" in frozen["detail"] and "wa-1" in frozen["detail"]
        assert time.monotonic() - started < 20
    finally:
        host.send_signal(signal.SIGCONT)
    # And once it answers again, so does the API
    _until("answers again", lambda: api.post("/sessions/wa-1/probe").status_code == 200, stack=stack)


# Messages ----------------------------------------------------------------------------------------


def test_bulk_send_progress_list_and_cancel(stack: Stack, api: httpx.Client) -> None:
    # Given a slow session and a template
    stack.add_session("wa-1", priority=1, pace_seconds=0.4)
    stack.start()
    stack.wait_connected("wa-1")
    api.post("/templates", json={"name": "gangguan", "content": "Halo {{ name }}, {{ note }}"}).raise_for_status()

    # When a bulk job is sent in the shape billing systems send (whatsapp, data, template, templateData)
    recipients = [{"whatsapp": f"6281234500{i:03d}@s.whatsapp.net", "data": {"name": f"P{i}"}} for i in range(20)]
    queued = api.post(
        "/send-bulk", json={"recipients": recipients, "template": "gangguan", "templateData": {"note": "maaf"}}
    )
    assert queued.status_code == 202, queued.text
    job = queued.json()
    assert job["jobId"] == job["id"] and job["total"] == 20 and job["queued"] + job["sent"] == 20

    # Then its progress moves, and the job and its messages are listed
    _until("2 sent", lambda: api.get(f"/jobs/{job['id']}").json()["sent"] >= 2, stack=stack)
    listed = api.get("/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["template"] == "gangguan"
    messages = api.get("/messages", params={"job": job["id"], "limit": 100}).json()["messages"]
    assert len(messages) == 20 and {m["bulkJobId"] for m in messages} == {job["id"]}
    assert {m["template"] for m in messages} == {"gangguan"} and all("text" not in m for m in messages)

    # When it is cancelled, what was not sent never is
    cancelled = api.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    after = cancelled.json()
    assert (
        after["status"] == "cancelled" and after["cancelledNow"] >= 10 and after["cancelled"] == after["cancelledNow"]
    )
    time.sleep(1.5)
    final = api.get(f"/jobs/{job['id']}").json()
    assert final["sent"] + final["cancelled"] + final["queued"] == 20
    assert len(stack.ledger()) == final["sent"] <= 20 - after["cancelledNow"]
    assert all(e.text.startswith("Halo P") and e.text.endswith(", maaf") for e in stack.ledger())
    by_status = api.get("/messages", params={"job": job["id"], "status": "cancelled", "limit": 100}).json()
    assert len(by_status["messages"]) == final["cancelled"]

    # And an invalid recipient queues nothing and is named
    bad = _error(
        api.post("/send-bulk", json={"recipients": [{"whatsapp": "081234567890"}, {"whatsapp": "0812"}], "text": "x"}),
        422,
    )
    assert "1 of 2 recipients are invalid" in bad["detail"] and "#1" in bad["detail"]
    assert len(api.get("/jobs").json()["jobs"]) == 1


def test_message_lists_filters_retry_and_cancel(stack: Stack, api: httpx.Client) -> None:
    # Given one connected session, one configured but down, and a number not on WhatsApp
    stack.add_session("wa-1", priority=1)
    stack.add_session("wa-2", priority=2)
    stack.simnet.drop("wa-2")
    stack.start()
    stack.wait_connected("wa-1")
    absent = "6281298765432"
    stack.simnet.set_not_on_whatsapp(absent)

    ok = [api.post("/send", json={"to": f"0812-3456-000{i}", "text": f"Tagihan {i}"}).json()["id"] for i in range(3)]
    failed = api.post("/send", json={"to": absent, "text": "Tagihan gagal", "priority": "urgent"}).json()["id"]
    waiting = api.post("/send", json={"to": "081234560009", "text": "Menunggu", "sessionId": "wa-2"}).json()["id"]
    for message_id in ok:
        _wait_status(api, stack, message_id, "sent", "delivered", "read")
    failure = _wait_status(api, stack, failed, "failed")
    assert "not on WhatsApp" in failure["error"]

    # Then the list shows them newest first, filtered as asked
    everything = api.get("/messages").json()
    assert [m["id"] for m in everything["messages"]] == [waiting, failed, *reversed(ok)]
    assert everything["next"] is None
    assert [m["id"] for m in api.get("/messages", params={"status": "failed"}).json()["messages"]] == [failed]
    failed_row = api.get("/messages", params={"to": "+62 812-9876-5432"}).json()["messages"]
    assert [m["id"] for m in failed_row] == [failed] and failed_row[0]["to"] == absent
    assert failed_row[0]["priority"] == 0 and failed_row[0]["error"]
    on_wa1 = {m["id"] for m in api.get("/messages", params={"session": "wa-1"}).json()["messages"]}
    assert on_wa1 == {*ok, failed}
    # Pages of two, continued with `next`
    page1 = api.get("/messages", params={"limit": 2}).json()
    page2 = api.get("/messages", params={"limit": 2, "before": page1["next"]}).json()
    page3 = api.get("/messages", params={"limit": 2, "before": page2["next"]}).json()
    assert [m["id"] for p in (page1, page2, page3) for m in p["messages"]] == [m["id"] for m in everything["messages"]]
    assert page3["next"] is None
    bad = _error(api.get("/messages", params={"status": "lost"}), 422)
    assert bad["detail"].startswith("query.status:")

    # When the failed one is retried once the number is on WhatsApp, it is sent
    _error(api.post(f"/message/{ok[0]}/retry"), 409)
    stack.simnet.set_not_on_whatsapp(absent, absent=False)
    retried = api.post(f"/message/{failed}/retry")
    assert retried.status_code == 200 and retried.json()["status"] in ("queued", "routed", "sending", "sent")
    _wait_status(api, stack, failed, "sent", "delivered", "read")
    assert [e.text for e in stack.ledger(absent)] == ["Tagihan gagal"]

    # And a message still waiting can be cancelled; a sent one cannot
    assert _status(api, waiting)["status"] in ("queued", "routed")
    cancelled = api.post(f"/message/{waiting}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert "only a scheduled, queued or routed message" in _error(api.post(f"/message/{ok[0]}/cancel"), 409)["detail"]
    stack.simnet.restore("wa-2")
    stack.wait_connected("wa-2")
    time.sleep(1.0)
    assert stack.ledger("6281234560009") == []


def test_queue_depth_per_session_and_priority(settings: Settings, stack: Stack, api: httpx.Client) -> None:
    # Given deliver tasks waiting on two sessions' queues (no session host consumes them)
    for sid in ("wa-1", "wa-2", "wa-3"):
        stack.add_session(sid, priority=1)
    waiting = {("wa-1", 0): 2, ("wa-1", 5): 1, ("wa-2", 9): 3}
    for (sid, step), n in waiting.items():
        for _ in range(n):
            stack.app.send_task(
                "wa.deliver", kwargs={"message_id": "x"}, queue=redis_keys.session_queue(sid), priority=step
            )

    # Then the queue endpoint shows each session's lists as the broker holds them
    answer = api.get("/queue").json()
    assert set(answer["sessions"]) == {"wa-1", "wa-2", "wa-3"}
    for sid, depth in answer["sessions"].items():
        assert depth["byPriority"] == {str(step): waiting.get((sid, step), 0) for step in range(10)}
        assert depth["total"] == stack.queue_length(redis_keys.session_queue(sid))
    assert answer["total"] == 6
    assert answer["dispatch"] == live_state.backlogs(stack.redis, [redis_keys.DEFAULT_QUEUE])[redis_keys.DEFAULT_QUEUE]


# Templates ---------------------------------------------------------------------------------------


def test_templates_create_get_update_preview_deactivate(api: httpx.Client) -> None:
    created = api.post(
        "/templates",
        json={"name": "custom_template", "category": "notification", "type": "text",
              "content": "Hello {{name}}, your order {{order_id}} is ready!"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert _error(api.post("/templates", json={"name": "custom_template", "content": "x"}), 409)["error"] == (
        "template_exists"
    )
    assert api.get("/templates/custom_template").json()["variables"] == ["name", "order_id"]

    # Preview by templateId (a name, the shape billing systems send), by name, by numeric id, and unsaved content
    by_template_id = api.post(
        "/templates/preview", json={"templateId": "custom_template", "data": {"name": "Budi", "order_id": "7"}}
    )
    assert by_template_id.status_code == 200, by_template_id.text
    assert by_template_id.json()["text"] == "Hello Budi, your order 7 is ready!"
    by_name = api.post("/templates/preview", json={"name": "custom_template", "data": {"name": "Ani"}}).json()
    assert by_name["missing"] == ["order_id"]
    by_id = api.post(
        "/templates/preview", json={"templateId": created.json()["id"], "data": {"name": "A", "order_id": 1}}
    )
    assert by_id.json()["text"] == "Hello A, your order 1 is ready!"
    unsaved = api.post("/templates/preview", json={"content": "Hai {{x}}", "data": {"x": "y"}}).json()
    assert unsaved["text"] == "Hai y"
    assert "unknown template" in _error(api.post("/templates/preview", json={"templateId": "nope"}), 422)["detail"]
    _error(api.post("/templates/preview", json={"templateId": 999999}), 422)
    _error(api.post("/templates/preview", json={"name": "custom_template", "content": "x"}), 422)

    # Update some fields; the rest stay
    updated = api.put("/templates/custom_template", json={"content": "Hi {{name}}", "category": "reminder"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["variables"] == ["name"] and updated.json()["type"] == "text"
    assert "body.category" in _error(api.put("/templates/custom_template", json={"category": "spam"}), 422)["detail"]
    _error(api.put("/templates/custom_template", json={"content": "Hi {{ name"}), 422)

    # Deactivated: listed as inactive, refused for sending
    gone = api.delete("/templates/custom_template")
    assert gone.status_code == 200 and gone.json()["isActive"] is False
    assert api.get("/templates", params={"active": "true"}).json()["templates"] == []
    assert [t["name"] for t in api.get("/templates").json()["templates"]] == ["custom_template"]
    refused = _error(api.post("/send", json={"to": "081234567890", "template": "custom_template"}), 422)
    assert refused["error"] == "unknown_template" and "inactive" in refused["detail"]


# Validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"text": "Halo"}, "body.to", "Field required"),
        ({"to": 6281234567890, "text": "Halo"}, "body.to", "valid string"),
        ({"to": "081234567890", "text": "x" * 4097}, "body.text", "at most 4096"),
        ({"to": "081234567890", "text": ""}, "body.text", "at least 1"),
        ({"to": "081234567890", "text": "Halo", "priority": "asap"}, "body.priority", ""),
        ({"to": "081234567890", "text": "Halo", "priority": 12}, "body.priority", ""),
        ({"to": "081234567890", "text": "Halo", "data": [1]}, "body.data", "valid dictionary"),
        ({"to": "081234567890", "text": "Halo", "colour": "red"}, "body.colour", "Extra inputs"),
        ({"to": "0812\x003456", "text": "Halo"}, "body.to", "NUL"),
    ],
)
def test_bad_fields_answer_422_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str, words: str
) -> None:
    answer = _error(api.post("/send", json=body), 422)
    assert answer["error"] == "validation_error"
    assert answer["detail"].startswith(f"{field}:") and words in answer["detail"], answer["detail"]
    assert answer["errors"][0]["loc"] == field.split(".")


def test_bad_requests_answer_422_with_a_reason_never_500(settings: Settings, api: httpx.Client) -> None:
    # Malformed and non-object JSON
    malformed = _error(api.post("/send", content=b'{"to": "0812', headers={"Content-Type": "application/json"}), 422)
    assert "malformed JSON" in malformed["detail"]
    for value in ([1, 2], "text", 3, None):
        assert _error(api.post("/send", json=value), 422)["error"] == "validation_error"
    json_type = {"Content-Type": "application/json"}
    for unreadable in (b"\xff\x00{", b'{"to": ' + b"9" * 5000 + b"}", b"[" * 100_000):
        assert "malformed JSON" in _error(api.post("/send", content=unreadable, headers=json_type), 422)["detail"]
    huge = _error(api.post("/send-bulk", content=b" " * (9 * 1024 * 1024), headers=json_type), 413)
    assert huge["error"] == "payload_too_large"
    # Refused by the domain, with its reason and code
    cases = [
        ({"to": "0812", "text": "Halo"}, "invalid_phone_number", "not a valid phone number"),
        ({"to": "081234567890", "template": "nope"}, "unknown_template", "unknown template 'nope'"),
        ({"to": "081234567890", "text": "Halo", "sessionId": "nope"}, "unknown_session", "unknown session 'nope'"),
        ({"to": "081234567890", "text": "Halo", "template": "x"}, "invalid_message", "exactly one of"),
        ({"to": "081234567890"}, "invalid_message", "exactly one of"),
        ({"to": "081234567890", "text": "   "}, "invalid_message", "text is empty"),
    ]
    for body, code, words in cases:
        answer = _error(api.post("/send", json=body), 422)
        assert answer["error"] == code and words in answer["detail"], answer

    # Limits say what they are
    too_many = [{"whatsapp": "081234567890"}] * 10_001
    assert "at most 10000" in _error(api.post("/send-bulk", json={"recipients": too_many, "text": "x"}), 422)["detail"]
    assert "body.recipients" in _error(api.post("/send-bulk", json={"recipients": [], "text": "x"}), 422)["detail"]
    over = _error(api.get("/messages", params={"limit": 501}), 422)
    assert over["detail"].startswith("query.limit:")
    _error(api.get("/messages", params={"before": "msg_nope"}), 422)
    _error(api.get("/messages/x"), 404)

    # Sessions: bad options, ids and numbers are refused when configured, not when a host starts them
    for body, words in (
        ({"deviceId": "WA-1", "options": {"auto_pair": "no"}}, "auto_pair must be true or false"),
        ({"deviceId": "WA-1", "options": {"colour": 1}}, "unknown simulated transport option"),
        ({"deviceId": "WA-1", "sessionId": "Not Valid"}, "must be 1-63 characters"),
        ({"deviceId": "WA-1", "priority": -1}, "body.priority"),
        ({"deviceId": "WA-1", "transport": "telegram"}, "body.transport"),
        ({"deviceId": "WA-1", "paceSeconds": 1e9}, "body.paceSeconds"),
        ({"deviceId": "   "}, "device id is empty"),
        ({"priority": 1}, "body.deviceId: Field required"),
    ):
        assert words in _error(api.post("/sessions", json=body), 422)["detail"], body
    assert api.get("/sessions").json()["sessions"] == []
    # Templates
    for body, words in (
        ({"name": "a b", "content": "x"}, "body.name"),
        ({"name": "ok", "content": "x", "language": "english"}, "body.language"),
        ({"name": "ok", "content": "{{ broken"}, "template 'ok'"),
        ({"name": "ok", "content": "x\x00"}, "NUL"),
    ):
        assert words in _error(api.post("/templates", json=body), 422)["detail"], body
    # A NUL in an id is refused, not sent to the database
    assert "NUL" in _error(api.get("/sessions/a%00b"), 422)["detail"]


def test_a_number_with_a_letter_and_a_nul_in_text_or_data_answer_422_saying_what_was_sent(api: httpx.Client) -> None:
    # Given a template with a variable that takes nested data
    api.post("/templates", json={"name": "tagihan", "content": "Halo {{nama}}: {{rincian}}"}).raise_for_status()
    ok = "081234567890"
    # When numbers holding a letter or an extension, and text or data holding a NUL, are sent
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("/send", {"to": "+62 812 3456 789a", "text": "Halo"}, "invalid_phone_number", "'+62 812 3456 789a' is not"),
        ("/send", {"to": "0812 3456 789x", "text": "Halo"}, "invalid_phone_number", "it holds 'x'"),
        ("/send", {"to": "0812-3456-7890x", "text": "Halo"}, "invalid_phone_number", "'0812-3456-7890x' is not"),
        ("/send", {"to": "0812-3456-7890 ext 5", "text": "Halo"}, "invalid_phone_number", "it holds 'e'"),
        ("/send", {"to": "12345", "text": "Halo"}, "invalid_phone_number", "'12345' is not a valid phone number"),
        ("/send", {"to": ok, "text": "Ha\x00lo"}, "invalid_message", "text contains a NUL"),
        (
            "/send",
            {"to": ok, "template": "tagihan", "data": {"nama": "Budi", "rincian": {"baris": ["ok", "\x00"]}}},
            "invalid_message",
            "data['rincian']['baris'][1] contains a NUL",
        ),
        (
            "/send-bulk",
            {"recipients": [{"whatsapp": ok}, {"whatsapp": "0812-3456-789a"}], "text": "Halo"},
            "invalid_message",
            "#1: '0812-3456-789a' is not a phone number",
        ),
        ("/send-bulk", {"recipients": [{"whatsapp": ok}], "text": "Ha\x00lo"}, "invalid_message", "text contains"),
        (
            "/send-bulk",
            {"recipients": [{"whatsapp": ok}], "template": "tagihan", "templateData": {"nama": "B", "rincian": "\x00"}},
            "invalid_message",
            "template_data['rincian'] contains a NUL",
        ),
        (
            "/send-bulk",
            {"recipients": [{"whatsapp": ok, "data": {"nama": "\x00"}}], "template": "tagihan",
             "templateData": {"rincian": "x"}},
            "invalid_message",
            "#0: data['nama'] contains a NUL",
        ),
    ]  # fmt: skip
    for path, body, code, words in cases:
        # Then each is a 422 whose detail says what was sent and what is wrong with it
        answer = _error(api.post(path, json=body), 422)
        assert answer["error"] == code and words in answer["detail"], (body, answer)
    # And nothing was stored
    assert api.get("/messages").json()["messages"] == []
    assert api.get("/jobs").json()["jobs"] == []


# Scheduling ----------------------------------------------------------------------------------------


def test_send_at_stores_a_scheduled_message_listed_by_status_and_cancellable(api: httpx.Client) -> None:
    # When a message is posted with a sendAt three hours ahead (WIB offset) and a ref
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).replace(microsecond=0)
    body = {
        "to": "0812-3456-7890",
        "text": "Tagihan",
        "sendAt": at.astimezone(dt.timezone(dt.timedelta(hours=7))).isoformat(),
        "expiresAt": (at + dt.timedelta(hours=1)).isoformat(),
        "noticeKey": "invoice:INV-A:reminder:H-1",
        "ref": "INV-A",
    }
    queued = api.post("/send", json=body)
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "scheduled"
    again = api.post("/send", json={**body, "text": "Lain"})
    assert again.json()["id"] == queued.json()["id"]  # one message per notice key

    # Then its status and the list of scheduled messages show when it is due
    status = _status(api, queued.json()["id"])
    assert (status["sendAt"], status["noticeKey"], status["ref"]) == (
        at.isoformat().replace("+00:00", "Z"),
        "invoice:INV-A:reminder:H-1",
        "INV-A",
    )
    listed = api.get("/messages", params={"status": "scheduled"}).json()["messages"]
    assert [m["id"] for m in listed] == [queued.json()["id"]]
    assert listed[0]["sendAt"] == status["sendAt"]
    assert api.get("/messages", params={"ref": "INV-A"}).json()["messages"][0]["id"] == queued.json()["id"]

    # And it can be cancelled while it waits
    assert api.post(f"/message/{queued.json()['id']}/cancel").json()["status"] == "cancelled"

    # And a time without its offset, or an expiry before the send, is a 422 naming the field; nothing stored
    naive = _error(api.post("/send", json={**body, "noticeKey": None, "sendAt": "2030-01-01T09:00:00"}), 422)
    assert "send_at is a naive datetime" in naive["detail"]
    early = {**body, "noticeKey": None, "expiresAt": (at - dt.timedelta(minutes=5)).isoformat()}
    assert "expires_at" in _error(api.post("/send", json=early), 422)["detail"]
    assert len(api.get("/messages").json()["messages"]) == 1
