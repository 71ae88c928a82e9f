"""The drop-in endpoints (``/compat/gateway/send``, ``/compat/fonnte/send``) and send-scoped keys,
in-process: the request shapes billing apps send (GET query, POST form, multipart, JSON; one and
several targets), the answers they read, and who may call what. The database is a SQLite file of
the test's own; the thin client is replaced by a recorder (its own checks are the API's, tested
with the API), so nothing here needs Redis.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from models import ApiKey, Base
from models.db import dispose_all
from wa_tasks.admin import api_keys
from wa_tasks.core import redis_keys
from wa_tasks.core.phone import normalize
from wa_tasks.infra import redis_client
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import get_settings
from wa_tasks.web import access_log
from wa_tasks.web.api import compat, messages
from wa_tasks.web.app import create_app

FULL_KEY = "full-key-for-tests"


@dataclass
class Recorder:
    """Stands in for ``wa_tasks.client.Client``: checks the number as the client does, records the send."""

    sent: list[tuple[str, str | None]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)
    #: The ``send_at`` of each send, in order (None: at once).
    send_at: list[Any] = field(default_factory=list)

    def send(self, to: str, *args: Any, text: str | None = None, **kwargs: Any) -> str:
        self.sent.append((normalize(to).e164, text))
        self.send_at.append(kwargs.get("send_at"))
        return f"msg-{next(self.ids)}"

    def send_request(self, request: SendRequest) -> str:
        """What ``POST /send`` calls."""
        return self.send(request.to, text=request.text)

    def status(self, message_id: str) -> dict[str, Any]:
        return {"id": message_id, "status": "queued"}


@dataclass
class Env:
    http: TestClient
    sent: list[tuple[str, str | None]]
    send_key: str
    send_key_id: str
    #: The ``send_at`` of each send (None: at once).
    send_at: list[Any] = field(default_factory=list)


@dataclass
class App:
    http: TestClient
    recorder: Recorder


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One app and database for the module (building the app is most of a test's time)."""
    tmp_path = tmp_path_factory.mktemp("dropin")
    url = f"sqlite:///{tmp_path / 'wa.db'}"
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WA_DATABASE_URL", url)
        patch.setenv("WA_API_KEY", FULL_KEY)
        patch.setenv("WA_DATA_DIR", str(tmp_path / "data"))
        get_settings.cache_clear()
        patch.setattr(compat, "client", lambda: recorder)
        patch.setattr(messages, "client", lambda: recorder)
        # The send keys' rate limit counts in Redis: a fake one under the settings' URL.
        redis_client.use(get_settings().redis, fakeredis.FakeRedis(decode_responses=True))
        try:
            with TestClient(create_app(), raise_server_exceptions=False) as http:
                yield App(http, recorder)
        finally:
            redis_client.forget(get_settings().redis)
    get_settings.cache_clear()
    dispose_all()


@pytest.fixture
def env(app: App) -> Env:
    """The app with nothing sent yet and a new send key of the test's own."""
    app.recorder.sent.clear()
    app.recorder.send_at.clear()
    app.recorder.ids = itertools.count()
    row, key = api_keys.create(get_settings(), "send", "phpnuxbill")
    return Env(app.http, app.recorder.sent, key, row["id"], app.recorder.send_at)


# URL-template gateways (phpnuxbill) -----------------------------------------------------------------


def test_a_url_template_get_with_a_send_key_in_the_url_queues_the_message(env: Env) -> None:
    # What phpnuxbill does with `…?key=KEY&number=[number]&text=[text]`: urlencode() fills the placeholders.
    answer = env.http.get(f"/compat/gateway/send?key={env.send_key}&number=081234567890&text=Tagihan+Rp150.000%0ALunas")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": True, "detail": "queued", "id": "msg-0", "target": "6281234567890"}
    assert env.sent == [("+6281234567890", "Tagihan Rp150.000\nLunas")]


@pytest.mark.parametrize(
    ("number_field", "text_field"), [("phone", "message"), ("target", "text"), ("to", "msg"), ("number", "message")]
)
def test_a_url_template_post_form_takes_each_field_name_those_gateways_use(
    env: Env, number_field: str, text_field: str
) -> None:
    answer = env.http.post(
        f"/compat/gateway/send?key={env.send_key}", data={number_field: "+62 812-3456-7890", text_field: "Halo"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] is True
    assert env.sent == [("+6281234567890", "Halo")]


def test_a_url_template_post_json_is_read_too(env: Env) -> None:
    answer = env.http.post(
        "/compat/gateway/send", json={"phone": "6281234567890", "text": "Halo"}, headers={"X-API-Key": env.send_key}
    )
    assert answer.status_code == 200, answer.text
    assert env.sent == [("+6281234567890", "Halo")]


@pytest.mark.parametrize(
    ("query", "quoted"),
    [
        ("text=Halo", "missing number"),
        ("number=081234567890", "missing text"),
        ("number=081234567890&text=%20%20", "missing text"),
        ("number=12ab&text=Halo", "12ab"),
        ("number=081234567890&text=a%00b", "NUL"),
    ],
)
def test_bad_input_on_the_gateway_is_a_422_in_the_gateway_shape_and_nothing_is_queued(
    env: Env, query: str, quoted: str
) -> None:
    answer = env.http.get(f"/compat/gateway/send?key={env.send_key}&{query}")
    assert answer.status_code == 422
    body = answer.json()
    assert body["status"] is False and quoted in body["reason"]
    assert env.sent == []


def test_oversized_text_is_refused(env: Env) -> None:
    answer = env.http.post(
        f"/compat/gateway/send?key={env.send_key}", data={"number": "081234567890", "text": "x" * 70_000}
    )
    assert answer.status_code == 422 and "at most" in answer.json()["reason"]
    assert env.sent == []


# Fonnte /send ---------------------------------------------------------------------------------------


def test_fonnte_multipart_with_several_targets_and_variables_answers_as_fonnte(env: Env) -> None:
    # PHP's curl with CURLOPT_POSTFIELDS as an array sends multipart/form-data; Fonnte's token is a bare Authorization.
    answer = env.http.post(
        "/compat/fonnte/send",
        files={
            "target": (None, "08123456789|Budi|INV-1,628987654321|Sari|INV-2"),
            "message": (None, "Halo {name}, tagihan {var1} sudah terbit. {var2}"),
            "delay": (None, "5-10"),
            "schedule": (None, "0"),
            "countryCode": (None, "62"),
            "typing": (None, "false"),
        },
        headers={"Authorization": env.send_key},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] is True and body["detail"] == "success! message in queue"
    assert body["id"] == ["msg-0", "msg-1"]
    assert body["target"] == ["628123456789", "628987654321"]
    assert "pace" in body["delay"]
    assert env.sent == [
        ("+628123456789", "Halo Budi, tagihan INV-1 sudah terbit. {var2}"),
        ("+628987654321", "Halo Sari, tagihan INV-2 sudah terbit. {var2}"),
    ]


def test_fonnte_urlencoded_json_and_get_forms_are_read(env: Env) -> None:
    headers = {"Authorization": f"Bearer {env.send_key}"}
    assert env.http.post(
        "/compat/fonnte/send", data={"target": "081234567890", "message": "a"}, headers=headers
    ).json()["status"]
    assert env.http.post(
        "/compat/fonnte/send",
        json={"target": "081234567890", "message": "b", "delay": 2, "schedule": 0},
        headers=headers,
    ).json()["status"]
    assert env.http.get(f"/compat/fonnte/send?key={env.send_key}&target=081234567890&message=c").json()["status"]
    assert [text for _, text in env.sent] == ["a", "b", "c"]


def test_fonnte_schedule_is_a_scheduled_send_at_that_unix_time(env: Env) -> None:
    at = int(time.time()) + 3600
    answer = env.http.post(
        "/compat/fonnte/send",
        data={"target": "081234567890,081234567891", "message": "Pengingat", "schedule": str(at)},
        headers={"Authorization": env.send_key},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = dt.datetime.fromtimestamp(at, dt.UTC)
    assert body["status"] is True and body["process"] == "scheduled"
    assert body["sendAt"] == expected.isoformat().replace("+00:00", "Z")
    assert env.send_at == [expected, expected]  # every target at that time
    # A schedule a few seconds ago (a slow caller) or 0 sends at once
    for now_ish in (str(int(time.time()) - 5), "0"):
        answer = env.http.get(
            f"/compat/fonnte/send?key={env.send_key}&target=081234567890&message=x&schedule={now_ish}"
        )
        assert answer.json()["process"] == "pending" and "sendAt" not in answer.json()
    assert env.send_at[2:] == [None, None]


def _limit(patch: pytest.MonkeyPatch, per_minute: int) -> None:
    patch.setenv("WA_API_RATE_LIMIT_PER_MINUTE", str(per_minute))
    get_settings.cache_clear()


def test_a_send_key_over_its_rate_limit_gets_429_in_each_callers_shape(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limit(monkeypatch, 3)
    try:
        url = f"/compat/gateway/send?key={env.send_key}&number=081234567890&text=Halo"
        assert [env.http.get(url).status_code for _ in range(3)] == [200, 200, 200]

        refused = env.http.get(url)
        assert refused.status_code == 429
        body = refused.json()
        assert body["status"] is False and body["error"] == "too_many_requests"
        assert (
            f"API key {env.send_key_id} made 3 requests" in body["reason"]
            and "WA_API_RATE_LIMIT_PER_MINUTE" in body["reason"]
        )
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert env.send_key not in refused.text  # the key's id, never the key
        # The same key on POST /send: the API's shape; nothing more was queued
        api = env.http.post(
            "/api/whatsapp/send", json={"to": "081234567890", "text": "x"}, headers={"X-API-Key": env.send_key}
        )
        assert api.status_code == 429 and api.json()["error"] == "too_many_requests" and "detail" in api.json()
        assert len(env.sent) == 3
        # Another send key has its own count, and the full key is not limited
        _, other = api_keys.create(get_settings(), "send", "mikrotik")
        assert env.http.get(f"/compat/gateway/send?key={other}&number=081234567890&text=Halo").status_code == 200
        for _ in range(4):
            full = env.http.get(f"/compat/gateway/send?key={FULL_KEY}&number=081234567890&text=Halo")
            assert full.status_code == 200
        # A wrong key is refused as before (401), not counted against anyone
        assert env.http.get("/compat/gateway/send?key=wak_nope&number=081234567890&text=Halo").status_code == 401
    finally:
        get_settings.cache_clear()


def test_the_rate_limit_is_counted_in_redis_under_the_key_id(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _limit(monkeypatch, 5)
    try:
        for _ in range(2):
            assert (
                env.http.get(f"/compat/gateway/send?key={env.send_key}&number=081234567890&text=Halo").status_code
                == 200
            )
        fake = redis_client.client_for(get_settings().redis)
        assert fake.zcard(redis_keys.api_rate(env.send_key_id)) == 2
        assert not [k for k in fake.keys("*") if env.send_key in k or api_keys.digest(env.send_key) in k]
        assert 0 < fake.pttl(redis_keys.api_rate(env.send_key_id)) <= 60_000
        _limit(monkeypatch, 0)  # 0: no limit
        for _ in range(8):
            assert (
                env.http.get(f"/compat/gateway/send?key={env.send_key}&number=081234567890&text=Halo").status_code
                == 200
            )
    finally:
        get_settings.cache_clear()


def test_fonnte_country_code_replaces_the_leading_zero(env: Env) -> None:
    answer = env.http.post(
        f"/compat/fonnte/send?key={env.send_key}",
        data={"target": "0123456789", "message": "Hai", "countryCode": "60"},
    )
    assert answer.status_code == 200, answer.text
    assert env.sent == [("+60123456789", "Hai")]


@pytest.mark.parametrize(
    ("fields", "quoted"),
    [
        ({"target": "081234567890", "message": "x", "schedule": "1700000000"}, "schedule 1700000000: send_at"),
        ({"target": "081234567890", "message": "x", "schedule": "1700000000000"}, "not milliseconds"),
        ({"target": "081234567890", "message": "x", "schedule": "tomorrow"}, "'tomorrow'"),
        ({"target": "081234567890", "message": "x", "delay": "10-5"}, "'10-5'"),
        ({"target": "081234567890", "message": "x", "delay": "soon"}, "'soon'"),
        ({"target": "081234567890", "message": "x", "countryCode": "+6a"}, "'+6a'"),
        ({"message": "x"}, "missing target"),
        ({"target": " , ", "message": "x"}, "missing target"),
        ({"target": "081234567890"}, "missing text"),
        ({"target": "081234567890,0812abc", "message": "x"}, "0812abc"),
        ({"target": "081234567890|Budi", "message": "x {name}", "url": "https://x.test/a.png"}, "media"),
    ],
)
def test_bad_fonnte_input_is_a_422_with_status_false_and_a_reason_and_nothing_is_queued(
    env: Env, fields: dict[str, str], quoted: str
) -> None:
    answer = env.http.post("/compat/fonnte/send", data=fields, headers={"Authorization": env.send_key})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["status"] is False and quoted in body["reason"], body
    assert env.sent == []  # a bad second target queues not even the first


def test_a_nul_in_one_target_s_variable_queues_none_of_the_targets(env: Env) -> None:
    answer = env.http.post(
        "/compat/fonnte/send",
        data={"target": "081234567890|Budi,081234567891|Sa\x00ri", "message": "Halo {name}"},
        headers={"Authorization": env.send_key},
    )
    assert answer.status_code == 422 and "NUL" in answer.json()["reason"]
    assert env.sent == []


# Keys and scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/compat/gateway/send", "/compat/fonnte/send"])
def test_a_missing_wrong_or_revoked_key_is_refused_in_the_gateway_shape(env: Env, path: str) -> None:
    fields = "number=081234567890&target=081234567890&text=x&message=x"
    for query in ("", "&key=wrong", "&key=wak_not-a-stored-key"):
        answer = env.http.get(f"{path}?{fields}{query}")
        assert answer.status_code == 401
        assert answer.json()["status"] is False and "token invalid" in answer.json()["reason"]
    api_keys.revoke(get_settings(), env.send_key_id)
    assert env.http.get(f"{path}?{fields}&key={env.send_key}").status_code == 401
    assert env.http.get(f"{path}?{fields}", headers={"Authorization": env.send_key}).status_code == 401
    assert env.sent == []


def test_the_full_key_works_on_the_drop_ins_too(env: Env) -> None:
    assert env.http.get(f"/compat/gateway/send?key={FULL_KEY}&number=081234567890&text=x").status_code == 200
    assert env.http.get(f"/compat/fonnte/send?token={FULL_KEY}&target=081234567890&message=x").status_code == 200
    assert len(env.sent) == 2


def test_a_send_key_sends_through_post_send_and_nothing_else(env: Env) -> None:
    headers = {"X-API-Key": env.send_key}
    answer = env.http.post("/api/whatsapp/send", json={"to": "081234567890", "text": "Halo"}, headers=headers)
    assert answer.status_code == 202, answer.text
    bearer = {"Authorization": f"Bearer {env.send_key}"}
    assert (
        env.http.post("/api/whatsapp/send", json={"to": "081234567890", "text": "b"}, headers=bearer).status_code == 202
    )
    for method, path in [
        ("DELETE", "/api/whatsapp/sessions/wa-1"),
        ("GET", "/api/whatsapp/sessions"),
        ("POST", "/api/whatsapp/templates"),
        ("GET", "/api/whatsapp/messages"),
        ("POST", "/api/whatsapp/send-bulk"),
        ("GET", "/metrics"),
    ]:
        answer = env.http.request(method, path, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "may only send" in answer.json()["detail"]
    # On the API proper the key goes in a header, not in a URL.
    answer = env.http.post(f"/api/whatsapp/send?key={env.send_key}", json={"to": "081234567890", "text": "c"})
    assert answer.status_code == 401
    assert [text for _, text in env.sent] == ["Halo", "b"]


def test_the_full_key_still_works_everywhere(env: Env) -> None:
    headers = {"X-API-Key": FULL_KEY}
    assert (
        env.http.post("/api/whatsapp/send", json={"to": "081234567890", "text": "x"}, headers=headers).status_code
        == 202
    )
    assert env.http.get("/openapi.json", headers=headers).status_code == 200


def test_keys_are_stored_hashed_and_listed_without_the_key(env: Env) -> None:
    settings = get_settings()
    listed = {k["id"]: k for k in api_keys.list_keys(settings)}
    mine = listed[env.send_key_id]
    assert (mine["scope"], mine["name"], mine["revokedAt"]) == ("send", "phpnuxbill", None)
    assert env.send_key not in repr(listed) and env.send_key.startswith(mine["prefix"])
    engine = sa.create_engine(settings.database)
    with engine.connect() as db:
        rows = [tuple(r) for r in db.execute(sa.select(ApiKey.__table__))]
    engine.dispose()
    assert env.send_key not in repr(rows) and api_keys.digest(env.send_key) in repr(rows)


# The key never reaches the log ------------------------------------------------------------------------


def test_the_access_log_masks_key_like_query_parameters() -> None:
    masked = access_log.mask_query("/compat/gateway/send?number=0812&key=wak_SECRET&text=a%20b&Token=t2&%6Bey=t3")
    assert masked == "/compat/gateway/send?number=0812&key=***&text=a%20b&Token=***&%6Bey=***"
    assert access_log.mask_query("/health") == "/health"


def test_uvicorn_s_request_line_is_masked_by_the_app_s_filter(env: Env) -> None:
    # The record as uvicorn's httptools/h11 protocols write it (uvicorn/protocols/http/*.py).
    record = logging.LogRecord(
        access_log.ACCESS_LOGGER,
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/compat/gateway/send?key={env.send_key}&number=0812&text=x", "1.1", 200),
        None,
    )
    assert logging.getLogger(access_log.ACCESS_LOGGER).filter(record)  # installed by create_app
    line = record.getMessage()
    assert env.send_key not in line and "key=***" in line and "number=0812" in line


def test_the_routeros_example_encodes_each_character_it_lists_as_its_own_percent_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "http-api.md").read_text()
    special = re.search(r':local special "((?:[^"\\]|\\.)*)"', doc)
    codes = re.search(r":local codes \{([^}]*)\}", doc)
    assert special and codes
    chars = special.group(1).encode().decode("unicode_escape")  # RouterOS's \" \n \r \t as Python's
    listed = [c.strip('"') for c in codes.group(1).split(";")]
    assert [f"%{ord(c):02X}" for c in chars] == listed
    # What would otherwise cut or change the message in a query string is among them.
    assert set(" &#+%\n") <= set(chars)


def test_a_file_upload_is_refused_as_media_and_never_read_as_text(env: Env) -> None:
    headers = {"Authorization": env.send_key}
    answer = env.http.post(
        "/compat/fonnte/send",
        data={"target": "081234567890", "message": "x"},
        files={"file": ("a.jpg", b"\xff\xd8", "image/jpeg")},
        headers=headers,
    )
    assert answer.status_code == 422 and "media" in answer.json()["reason"]
    answer = env.http.post(
        "/compat/fonnte/send",
        data={"target": "081234567890"},
        files={"message": ("m.txt", b"from a file", "text/plain")},
        headers=headers,
    )
    assert answer.status_code == 422 and "missing text" in answer.json()["reason"]
    assert (
        env.http.get(f"/compat/gateway/send?key={env.send_key}&number=0812345678&text=x&url=http://a/b.png").status_code
        == 422
    )
    assert env.sent == []
