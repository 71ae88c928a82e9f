"""Oversized, streamed and malformed request bodies, on the pages' forms as much as on the API.

On a real ``wa-tasks web`` process (uvicorn): a chunked body with no ``Content-Length`` is counted
as it arrives and refused with 413 the moment it passes the 8 MB limit, before the client has
finished sending it, and the server closes the connection instead of reading the rest; a login
form with a 2 MB field is a 4xx, not a 500.

Then every form of the pages is fuzzed in-process (a TestClient over the same app, against the real
database and Redis: thousands of requests in seconds): random, oversized and malformed fields,
files where text is expected, NUL characters, invalid UTF-8, broken multipart bodies, wrong content
types and garbage Origin headers. No answer may be a 5xx, and every refusal says why in words.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import hypothesis
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import strategies as st

from support.stack import Stack, settings_env
from support.web import API_KEY, WebProcess, running_web_process
from wa_tasks.settings import get_settings
from wa_tasks.web import pages
from wa_tasks.web.app import create_app
from wa_tasks.web.limits import MAX_BODY_BYTES

pytestmark = pytest.mark.integration

#: One chunk of a streamed body (and uvicorn's own read-ahead before it waits for the app).
CHUNK = 64 * 1024
#: Over Starlette's 1 MB limit of one form field.
BIG_FIELD = 2 * 1024 * 1024


@pytest.fixture
def web(stack: Stack, tmp_path: Path) -> Iterator[WebProcess]:
    with running_web_process(stack.settings, tmp_path / "web-logs") as process:
        yield process


def _connect(web: WebProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return sock


def _chunked_head(path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body of one HTTP answer; and whether the server then closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"connection closed before an answer: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        more = sock.recv(65536)
        assert more, "connection closed in the middle of the answer"
        body += more
    closed = sock.recv(65536) == b""
    return status, headers, body, closed


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory (bytes): what holding a body whole would have raised."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024  # type: ignore[index]


# A real web process ----------------------------------------------------------------------------
# (on SQLite only: no body reaches the database here)

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite_only
def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(web: WebProcess) -> None:
    with _connect(web) as sock:
        sock.sendall(_chunked_head("/api/whatsapp/send-bulk"))
        # Exactly one byte over the limit, and no end of the body: a server that waits for the
        # whole body before judging its size never answers (the read below times out).
        for _ in range(MAX_BODY_BYTES // CHUNK):
            sock.sendall(b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n")
        sock.sendall(b"1\r\n ")
        status, headers, body, closed = _read_answer(sock)
    assert status == 413, body
    answer = json.loads(body)
    assert answer["error"] == "payload_too_large" and "over 8 MB" in answer["detail"]
    # The rest of the body is not waited for: the server closes the connection after the answer
    assert headers.get("connection") == "close" and closed


@sqlite_only
@pytest.mark.parametrize(
    ("path", "kind"),
    [
        # Refused at the body limit (8 MB read, as JSON is read whole)
        ("/api/whatsapp/send-bulk", "application/json"),
        # Refused at the form's field limit (1 MB), long before the body limit
        ("/login", "application/x-www-form-urlencoded"),
    ],
)
def test_the_rest_of_a_30_mb_stream_is_never_read(web: WebProcess, path: str, kind: str) -> None:
    before = _peak_rss(web.pid)
    sent = 0
    stopped: list[BaseException] = []

    def write(sock: socket.socket) -> None:
        nonlocal sent
        try:
            sock.sendall(_chunked_head(path).replace(b"application/json", kind.encode()))
            filler = b" " if kind == "application/json" else b"a"
            while sent < 30 * 1024 * 1024:
                sock.sendall(b"%x\r\n" % CHUNK + filler * CHUNK + b"\r\n")
                sent += CHUNK
            sock.sendall(b"0\r\n\r\n")
        except OSError as exc:  # the server closed the connection: what this test wants
            stopped.append(exc)

    with _connect(web) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        writer = threading.Thread(target=write, args=(sock,), daemon=True)
        writer.start()
        writer.join(60)
        assert not writer.is_alive(), "the server neither read the stream nor closed the connection"
    assert stopped, "the server read all 30 MB"
    # What was read (at most the 8 MB limit) and the socket buffers on both sides
    assert sent < 20 * 1024 * 1024, sent
    # Holding the body whole would have taken 30 MB at least
    grown = _peak_rss(web.pid) - before
    assert grown < 16 * 1024 * 1024, f"the web process grew by {grown / 2**20:.1f} MB"


@sqlite_only
def test_a_streamed_body_up_to_the_limit_is_read_as_usual(web: WebProcess) -> None:
    import httpx

    request = json.dumps({"content": "Halo {{ nama }}", "data": {"nama": "Budi"}}).encode()
    # Exactly the limit: the JSON padded with whitespace, sent in chunks with no Content-Length
    padding = MAX_BODY_BYTES - len(request)
    chunks = [request, *([b" " * CHUNK] * (padding // CHUNK)), b" " * (padding % CHUNK)]
    assert sum(map(len, chunks)) == MAX_BODY_BYTES
    with httpx.Client(base_url=web.base, headers={"X-API-Key": API_KEY}, timeout=60) as api:
        answer = api.post(
            "/api/whatsapp/templates/preview", content=iter(chunks), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in answer.request.headers
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"] == "Halo Budi"
        # The connection stays open for the next request
        assert answer.headers.get("connection") != "close"


@sqlite_only
def test_a_declared_length_over_the_limit_is_refused_unread(web: WebProcess) -> None:
    for accept, kind in (("*/*", "application/json"), ("text/html,*/*;q=0.8", "text/plain")):
        with _connect(web) as sock:
            sock.sendall(
                (
                    f"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {9 * 1024 * 1024}\r\n"
                    f"Accept: {accept}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nkey="
                ).encode()
            )
            status, headers, body, closed = _read_answer(sock)
        assert status == 413 and headers["content-type"].startswith(kind), (headers, body)
        assert headers.get("connection") == "close" and closed
        if kind == "application/json":
            assert json.loads(body)["error"] == "payload_too_large"
        else:  # a browser: a sentence, not JSON
            assert body.decode().startswith("Refused: what the form sent is over 8 MB"), body


@sqlite_only
def test_a_login_with_a_2_mb_field_is_a_4xx_that_says_why(web: WebProcess) -> None:
    import httpx

    for field in ("key", "next"):
        answer = httpx.post(f"{web.base}/login", data={field: "x" * BIG_FIELD}, timeout=30)
        assert answer.status_code == 413, answer.text
        assert "field of the form is too long" in _alert(answer.text)
    # A streamed form (no Content-Length) under the body limit, with a field over the field limit
    streamed = httpx.post(
        f"{web.base}/login",
        content=iter([b"key=", b"x" * BIG_FIELD]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert streamed.status_code == 413 and "too long" in _alert(streamed.text)
    # And the server is still fine
    assert httpx.get(f"{web.base}/health", timeout=10).status_code == 200


def _alert(page: str) -> str:
    found = re.search(r'role="alert">(.*?)</p>', page, re.S)
    return html.unescape(found[1]).strip() if found else ""


# Every form of the pages, fuzzed ----------------------------------------------------------------

#: Real things for the path parameters (random ones only ever reach "not found").
REAL = {"session_id": "wa-1", "name": "info", "message_id": "msg_nope", "job_id": "job_nope", "event_id": "evt_nope"}


def _form_routes() -> list[tuple[str, list[str]]]:
    """Every POST of the pages, with the names of its form fields."""
    found = []
    for route in [*pages.router.routes, *pages.pages.routes]:
        if isinstance(route, APIRoute) and "POST" in route.methods:
            found.append((route.path, [field.alias for field in route.dependant.body_params]))
    return sorted(found)


FORMS = _form_routes()


@pytest.fixture
def client(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The web app in-process, logged in, over a real database and Redis with one session and
    one template (no session host: commands to it are refused as such)."""
    for name, value in {**settings_env(stack.settings), "WA_API_KEY": API_KEY}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()  # read once per process, and this process has read it before
    stack.add_session("wa-1", priority=1)
    stack.client.create_template("info", "Halo {{ customer_name }}.")
    with TestClient(create_app(), raise_server_exceptions=False, follow_redirects=False) as test_client:
        assert test_client.post("/login", data={"key": API_KEY}).status_code == 303
        yield test_client
    monkeypatch.undo()
    get_settings.cache_clear()


def _path(template: str, value: str | None) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: quote(REAL[m[1]] if value is None else value, safe=""), template)


def _answered(response: Any, what: str) -> None:
    """Not a server error, and a refusal says why (an error page's notice, or JSON's detail)."""
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[-2000:]}"
    if response.status_code >= 400:
        kind = response.headers.get("content-type", "")
        reason = json.loads(response.content).get("detail") if "json" in kind else _alert(response.text)
        assert reason, f"{what}: {response.status_code} without a reason: {response.text[-2000:]}"


#: Bodies no browser sends: (content type, body).
MALFORMED = [
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xyz--\r\n"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nnot a header line\r\n\r\n"),
    ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
    ("multipart/form-data", b"--xyz\r\n\r\n"),
    ("multipart/form-data; boundary=", b"--\r\n"),
    (
        "multipart/form-data; boundary=xyz; charset=no-such-codec",
        b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\xfe\r\n--xyz--\r\n',
    ),
    ("application/x-www-form-urlencoded", b"a=%ff%fe&b=%00&%zz=1&&=&=="),
    ("application/x-www-form-urlencoded", b"\xff\xfe\x00\x01"),
    ("application/x-www-form-urlencoded; charset=utf-16", b"key=\xff\xfe"),
    ("application/json", b'{"key": "x"}'),
    ("text/plain", b"key=x"),
    ("", b"key=x"),
    ("application/x-www-form-urlencoded", b"&".join([b"f=1"] * 1001)),
    ("application/x-www-form-urlencoded", b"x" * BIG_FIELD + b"=1"),
]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_page_form_refuses_bad_input_with_a_4xx_never_a_5xx(client: TestClient) -> None:
    assert len(FORMS) >= 15, FORMS  # login, logout, sessions, templates, queue: all found

    seen: Counter[int] = Counter()

    def post(url: str, **request: Any) -> Any:
        response = client.post(url, **request)
        seen[response.status_code] += 1
        if response.headers.get("location", "").startswith("/login"):
            client.post("/login", data={"key": API_KEY})  # logged out (the logout form works)
        return response

    get = client.get
    # Every form, with each bad input a handler could turn into a 500
    for path, fields in FORMS:
        url = _path(path, None)
        names = fields or ["x"]
        for name in names:
            _answered(post(url, data={name: "x" * BIG_FIELD}), f"{path} {name} 2 MB")
            _answered(post(url, data={name: "a\x00b"}), f"{path} {name} NUL")
            _answered(post(url, files={name: ("a.txt", b"\x00\xff")}), f"{path} {name} as a file")
        for kind, body in MALFORMED:
            headers = {"Content-Type": kind} if kind else {}
            _answered(post(url, content=body, headers=headers), f"{path} {kind} {body[:40]!r}")
        for origin in ("http://[", "http://evil.example", "\x7f", "http://testserver"):
            _answered(post(url, data={"x": "1"}, headers={"Origin": origin}), f"{path} Origin {origin!r}")
            _answered(post(url, data={"x": "1"}, headers={"Referer": origin}), f"{path} Referer {origin!r}")
        if "{" in path:
            for odd in ("a\x00b", "x" * 5000, "..", "%", "\u202e\ufffd"):
                _answered(post(_path(path, odd), data={}), f"{path} with {odd[:20]!r}")
    # Pages that read the query
    for query in ("?status=%00", "?to=%00&session=%ff", "?job=" + "x" * 5000, "?next=%00"):
        for page in ("/queue", "/queue/live", "/login", "/sessions"):
            _answered(get(page + query), f"{page}{query}")

    # Then random forms: names and values anywhere in Unicode, raw bytes, any content type
    text = st.text(st.characters(codec="utf-8"), max_size=300)
    # Values a form's numbers, dates and choices might get wrong
    value = st.one_of(
        text,
        st.integers().map(str),
        st.floats().map(str),
        st.dates().map(str),
        st.sampled_from(["", " ", "-1", "1e309", "9" * 30, "2024-02-30", "simulated", "neonize", "qr", "on"]),
    )

    def with_fields(form: tuple[str, list[str]]) -> Any:
        # Mostly the form's own field names, so that the values get past the parser to the action
        name = st.sampled_from(form[1]) | text if form[1] else text
        return st.tuples(st.just(form[0]), st.lists(st.tuples(name, value), max_size=8))

    @hypothesis.given(
        form=st.sampled_from(FORMS).flatmap(with_fields),
        path_value=st.none() | text,
        raw=st.none() | st.tuples(st.sampled_from([k for k, _ in MALFORMED] + ["application/xml"]), st.binary()),
        multipart=st.booleans(),
    )
    @hypothesis.settings(
        max_examples=1000, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    def fuzz(
        form: tuple[str, list[tuple[str, str]]],
        path_value: str | None,
        raw: tuple[str, bytes] | None,
        multipart: bool,
    ) -> None:
        path, named = form
        url = _path(path, path_value)
        if raw is not None:
            response = post(url, content=raw[1], headers={"Content-Type": raw[0]} if raw[0] else {})
        elif multipart:
            response = post(url, files=[(k, (None, v.encode())) for k, v in named] or {"x": (None, b"")})
        else:
            response = post(url, data=dict(named))
        _answered(response, f"{url} {named or raw}")

    started = time.monotonic()
    fuzz()
    assert time.monotonic() - started < 60
    print(f"{sum(seen.values())} requests:", sorted(seen.items()))
    # The forms were not only refused: many a fuzzed form got through to its action
    assert seen[303] > 100 and seen[422] > 0 and seen[413] > 0 and seen[400] > 0, seen


def test_the_queue_page_shows_a_scheduled_message_with_its_time_and_cancels_it(
    client: TestClient, stack: Stack
) -> None:
    due = dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)
    message_id = stack.client.send(
        "0812-3456-7890", text="Tagihan", send_at=due, notice_key="invoice:INV-Q:reminder:H-1", ref="INV-Q"
    )

    page = client.get("/queue?status=scheduled")
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-message="{message_id}"') :]
    row = row[: row.index("</tr>")]
    assert 'data-status="scheduled"' in row and "data-due=" in row and "invoice:INV-Q:reminder:H-1" in row
    assert f'action="/queue/messages/{message_id}/cancel"' in row

    assert (
        client.post(f"/queue/messages/{message_id}/cancel", headers={"referer": "http://testserver/queue"}).status_code
        == 303
    )
    assert stack.client.status(message_id)["status"] == "cancelled"
