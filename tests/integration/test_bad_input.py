"""Bad input at every entry point but the HTTP API (tested with the API): the thin client, the
public Celery tasks ``wa.send`` and ``wa.notify`` sent through the real broker to a real worker,
and the command line. Each bad request gets a clear error that names what was wrong; afterwards
nothing is queued (no message rows but the documented ``failed`` records of refused tasks, empty
broker queues) and the simulated network received nothing."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from conftest import TABLES, empty_tables, make_settings
from models import Message, QueueJob, Template, WhatsAppSession
from support.cli import invoke
from support.stack import Stack, settings_env
from wa_tasks.client import Client
from wa_tasks.core.phone import mask
from wa_tasks.errors import (
    InvalidCallbackUrl,
    InvalidMessage,
    InvalidPhoneNumber,
    InvalidPriority,
    InvalidSchedule,
    InvalidTemplate,
    MessageNotFound,
    MissingRecipient,
    TemplateRenderError,
    UnknownEvent,
    UnknownSession,
    UnknownTemplate,
    WaTasksError,
)
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration

OK_NUMBER = "0812-3456-7890"
TEMPLATE = "tagihan_uji"
TEMPLATE_TEXT = "Halo {{nama}}, tagihan Anda Rp{{jumlah}} jatuh tempo {{jatuh_tempo}}."
DATA = {"nama": "Budi", "jumlah": "150.000", "jatuh_tempo": "5 Desember"}
HUGE = "x" * 4097
QUEUES = ("wa.default", "wa.session.wa-1")


@pytest.fixture
def stack_with_template(stack: Stack) -> Stack:
    """One configured session and one template with three variables; nothing started."""
    stack.add_session("wa-1", priority=1)
    stack.client.create_template(TEMPLATE, TEMPLATE_TEXT)
    return stack


@pytest.fixture(scope="module")
def configured_stacks() -> dict[str, tuple[Stack, list[object]]]:
    """The thin-client and command-line cases' stacks, one per database, kept from case to case,
    with the state each case must find (``_state``; None: set up again)."""
    return {}


@pytest.fixture
def client_stack(
    database_url: str,
    redis_url: str,
    configured_stacks: dict[str, tuple[Stack, list[object]]],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    """As ``stack_with_template`` (nothing started), but set up again only when the state a case
    finds is not the one the last set-up left (a failed case may have stored something; another
    test may have changed the database or Redis), not for every case: each case checks that it
    stored nothing."""
    if database_url not in configured_stacks:
        folder = tmp_path_factory.mktemp("thin-client")
        (folder / "logs").mkdir()
        settings = make_settings(database_url, redis_url, folder / "var")
        configured_stacks[database_url] = (Stack(settings, folder / "logs"), [None])
    stack, expected = configured_stacks[database_url]
    if expected[0] is None or _state(stack) != expected[0]:
        empty_tables(database_url)
        stack.redis.flushdb()
        stack.add_session("wa-1", priority=1)
        stack.client.create_template(TEMPLATE, TEMPLATE_TEXT)
        expected[0] = _state(stack)
    yield stack
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.passed:
        expected[0] = None


def _state(stack: Stack) -> tuple[object, ...]:
    """What is stored: every table's row count, the sessions and templates by name, Redis' keys."""
    with stack.db() as db:
        counts = tuple(db.scalar(text(f"SELECT count(*) FROM {table}")) for table in TABLES)
        sessions = tuple(db.scalars(select(WhatsAppSession.id).order_by(WhatsAppSession.id)).all())
        templates = tuple(db.scalars(select(Template.name).order_by(Template.name)).all())
    return counts, sessions, templates, tuple(sorted(stack.redis.keys("*")))


def assert_nothing_queued(stack: Stack, refused: int = 0) -> None:
    """No message but ``refused`` failed records, no bulk job, empty queues, an empty ledger."""
    with stack.db() as db:
        statuses = db.scalars(select(Message.status)).all()
        jobs = db.scalar(select(func.count()).select_from(QueueJob))
    assert sorted(statuses) == ["failed"] * refused, statuses
    assert jobs == 0
    assert {q: stack.queue_length(q) for q in QUEUES} == dict.fromkeys(QUEUES, 0)
    assert stack.ledger() == []


# The thin client -------------------------------------------------------------------------------

Call = Callable[[Client], Any]

CLIENT_CASES: list[Any] = [
    # send(): numbers
    pytest.param(
        lambda c: c.send("12345", text="x"),
        InvalidPhoneNumber,
        "'12345' is not a valid phone number",
        id="short-number",
    ),
    pytest.param(
        lambda c: c.send("abc", text="x"), InvalidPhoneNumber, "'abc' is not a phone number", id="letters-number"
    ),
    # A letter or an extension is refused, never skipped (phonenumbers alone reads another valid number)
    *[
        pytest.param(
            lambda c, raw=raw: c.send(raw, text="x"),
            InvalidPhoneNumber,
            f"{raw!r} is not a phone number: it holds",
            id=f"number-{raw}",
        )
        for raw in ("+62 812 3456 789a", "0812 3456 789x", "0812-3456-7890x", "0812-3456-7890 ext 5", "0812/3456/7890")
    ],
    pytest.param(lambda c: c.send("0812\x003456", text="x"), InvalidPhoneNumber, "it holds '\\x00'", id="nul-number"),
    pytest.param(
        lambda c: c.send_media("0812-3456-789a", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, caption="x"),
        InvalidPhoneNumber,
        "'0812-3456-789a' is not a phone number",
        id="media-letter-number",
    ),
    pytest.param(
        lambda c: c.is_opted_out("0812-3456-789a"), InvalidPhoneNumber, "'0812-3456-789a'", id="opted-out-letter"
    ),
    pytest.param(
        lambda c: c.sync_contacts([OK_NUMBER, "0812 3456 789x"]),
        InvalidPhoneNumber,
        "'0812 3456 789x' is not a phone number",
        id="contacts-letter-number",
    ),
    pytest.param(lambda c: c.send("", text="x"), InvalidPhoneNumber, "phone number is empty", id="empty-number"),
    pytest.param(lambda c: c.send(123, text="x"), InvalidPhoneNumber, "must be a string, got int", id="int-number"),
    pytest.param(lambda c: c.send(None, text="x"), InvalidPhoneNumber, "got NoneType", id="none-number"),
    pytest.param(lambda c: c.send("1" * 80, text="x"), InvalidPhoneNumber, "too long", id="long-number"),
    pytest.param(lambda c: c.send("x@g.us", text="x"), InvalidPhoneNumber, "not a personal WhatsApp", id="group-jid"),
    # send(): texts
    pytest.param(lambda c: c.send(OK_NUMBER, text=""), InvalidMessage, "text is empty", id="empty-text"),
    pytest.param(lambda c: c.send(OK_NUMBER, text="  \n "), InvalidMessage, "text is empty", id="blank-text"),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text=HUGE), InvalidMessage, "4097 characters; the limit is 4096", id="huge"
    ),
    pytest.param(lambda c: c.send(OK_NUMBER, text=42), InvalidMessage, "text must be a string, got int", id="int-text"),
    # NUL characters, wherever text enters
    pytest.param(lambda c: c.send(OK_NUMBER, text="Halo\x00"), InvalidMessage, "text contains a NUL", id="nul-text"),
    pytest.param(
        lambda c: c.send(OK_NUMBER, template=TEMPLATE, data={**DATA, "nama": "Bu\x00di"}),
        InvalidMessage,
        "data['nama'] contains a NUL",
        id="nul-data",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, template=TEMPLATE, data={**DATA, "rincian": [{"item": "ok"}, {"item": "\x00"}]}),
        InvalidMessage,
        "data['rincian'][1]['item'] contains a NUL",
        id="nul-nested-data",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, template=TEMPLATE, data={**DATA, "a\x00": "x"}),
        InvalidMessage,
        "data has a key with a NUL",
        id="nul-data-key",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, template="tagihan\x00"), InvalidMessage, "template contains a NUL", id="nul-tpl"
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", idempotency_key="k\x00"),
        InvalidMessage,
        "idempotency_key contains a NUL",
        id="nul-key",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", session="wa-1\x00"),
        InvalidMessage,
        "session contains a NUL",
        id="nul-sess",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", email="budi\x00@example.com"),
        InvalidMessage,
        "email contains a NUL",
        id="nul-email",
    ),
    pytest.param(
        lambda c: c.send_media(OK_NUMBER, "https://example.com/a.png", caption="Halo\x00"),
        InvalidMessage,
        "text contains a NUL",
        id="nul-caption",
    ),
    pytest.param(
        lambda c: c.send_media(OK_NUMBER, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, caption="x", filename="a\x00.png"),
        InvalidMessage,
        "media['filename'] contains a NUL",
        id="nul-filename",
    ),
    pytest.param(lambda c: c.send(OK_NUMBER), InvalidMessage, "exactly one of text= or template=", id="no-content"),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", template=TEMPLATE, data=DATA),
        InvalidMessage,
        "exactly one of text= or template=",
        id="text-and-template",
    ),
    # send(): templates and their data
    pytest.param(
        lambda c: c.send(OK_NUMBER, template="nope"), UnknownTemplate, "unknown template 'nope'", id="unknown-tpl"
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, template=""), InvalidMessage, "template must be a template name", id="empty-tpl"
    ),
    pytest.param(lambda c: c.send(OK_NUMBER, template=TEMPLATE), TemplateRenderError, "jatuh_tempo", id="tpl-no-data"),
    pytest.param(
        lambda c: c.send(OK_NUMBER, template=TEMPLATE, data={"nama": "Budi"}),
        TemplateRenderError,
        "jumlah",
        id="tpl-missing-data",
    ),
    pytest.param(lambda c: c.send(OK_NUMBER, template=TEMPLATE, data="x"), InvalidMessage, "got str", id="str-data"),
    pytest.param(lambda c: c.send(OK_NUMBER, template=TEMPLATE, data=[1]), InvalidMessage, "got list", id="list-data"),
    # send(): priority, session, idempotency key
    pytest.param(lambda c: c.send(OK_NUMBER, text="x", priority=99), InvalidPriority, "0..9", id="priority-99"),
    pytest.param(lambda c: c.send(OK_NUMBER, text="x", priority=-1), InvalidPriority, "0..9", id="priority-neg"),
    pytest.param(lambda c: c.send(OK_NUMBER, text="x", priority="asap"), InvalidPriority, "'asap'", id="priority-name"),
    pytest.param(lambda c: c.send(OK_NUMBER, text="x", priority=True), InvalidPriority, "True", id="priority-bool"),
    pytest.param(lambda c: c.send(OK_NUMBER, text="x", session="wa-9"), UnknownSession, "'wa-9'", id="unknown-session"),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", session=1), UnknownSession, "unknown session 1", id="int-session"
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", idempotency_key=""), InvalidMessage, "idempotency_key", id="empty-key"
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", idempotency_key=7), InvalidMessage, "idempotency_key", id="int-key"
    ),
    # send_bulk()
    pytest.param(lambda c: c.send_bulk([], text="x"), InvalidMessage, "non-empty list", id="bulk-empty"),
    pytest.param(lambda c: c.send_bulk("0812", text="x"), InvalidMessage, "non-empty list", id="bulk-str"),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}, {"whatsapp": "abc"}, {"whatsapp": OK_NUMBER}], text="x"),
        InvalidMessage,
        "1 of 3 recipients are invalid, nothing was queued: #1: 'abc' is not a phone number",
        id="bulk-one-bad-number",
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}, {"whatsapp": "0812 3456 789x"}], text="x"),
        InvalidMessage,
        "#1: '0812 3456 789x' is not a phone number: it holds 'x'",
        id="bulk-letter-number",
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], text="Halo\x00"), InvalidMessage, "NUL", id="bulk-nul"
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], template=TEMPLATE, template_data={**DATA, "nama": "\x00"}),
        InvalidMessage,
        "template_data['nama'] contains a NUL",
        id="bulk-nul-shared-data",
    ),
    pytest.param(
        lambda c: c.send_bulk(
            [{"whatsapp": OK_NUMBER, "data": DATA}, {"whatsapp": OK_NUMBER, "data": {**DATA, "nama": ["\x00"]}}],
            template=TEMPLATE,
        ),
        InvalidMessage,
        "#1: data['nama'][0] contains a NUL",
        id="bulk-nul-recipient-data",
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], text=HUGE), InvalidMessage, "at most 4096", id="bulk-huge"
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], text=""), InvalidMessage, "non-empty", id="bulk-empty-text"
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], template="nope"),
        UnknownTemplate,
        "'nope'",
        id="bulk-unknown-tpl",
    ),
    pytest.param(
        lambda c: c.send_bulk(
            [{"whatsapp": OK_NUMBER, "data": DATA}, {"whatsapp": "0813-1111-2222", "data": {"nama": "Ani"}}],
            template=TEMPLATE,
        ),
        InvalidMessage,
        "#1: ",
        id="bulk-missing-data",
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER, "data": "x"}], text="x"),
        InvalidMessage,
        "mapping",
        id="bulk-str-data",
    ),
    pytest.param(
        lambda c: c.send_bulk(["0812"], text="x"), InvalidMessage, "a recipient must be a mapping", id="bulk-str-item"
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], text="x", priority=99),
        InvalidPriority,
        "0..9",
        id="bulk-priority",
    ),
    # send_media()
    pytest.param(lambda c: c.send_media(OK_NUMBER, 123, caption="x"), InvalidMessage, "URL or bytes", id="media-int"),
    pytest.param(
        lambda c: c.send_media(OK_NUMBER, "ftp://example.com/a.png", caption="x"),
        InvalidMessage,
        "http",
        id="media-ftp",
    ),
    pytest.param(lambda c: c.send_media(OK_NUMBER, b"", caption="x"), InvalidMessage, "0 bytes", id="media-empty"),
    pytest.param(
        lambda c: c.send_media(OK_NUMBER, b"not an image", caption="x"),
        InvalidMessage,
        "not recognised",
        id="media-unknown",
    ),
    pytest.param(
        lambda c: c.send_media(OK_NUMBER, "https://example.com/a.png"), InvalidMessage, "caption", id="media-no-caption"
    ),
    pytest.param(
        lambda c: c.send_media(OK_NUMBER, "https://example.com/a.png", caption=HUGE),
        InvalidMessage,
        "4096",
        id="media-huge",
    ),
    # notify()
    pytest.param(
        lambda c: c.notify("invoice.nope", {"customer_whatsapp": OK_NUMBER}), UnknownEvent, "invoice.nope", id="event"
    ),
    pytest.param(
        lambda c: c.notify("invoice.created", {}), MissingRecipient, "customer_whatsapp", id="notify-no-number"
    ),
    pytest.param(lambda c: c.notify("invoice.created", "x"), InvalidMessage, "got str", id="notify-str-data"),
    pytest.param(
        lambda c: c.notify("invoice.created", {"customer_whatsapp": 812}),
        MissingRecipient,
        "812",
        id="notify-int-number",
    ),
    pytest.param(
        lambda c: c.notify("invoice.created", {"customer_whatsapp": "0812-3456-7890 ext 5"}, template=TEMPLATE),
        InvalidPhoneNumber,
        "'0812-3456-7890 ext 5' is not a phone number",
        id="notify-extension-number",
    ),
    pytest.param(
        lambda c: c.notify(
            "invoice.created", {"customer_whatsapp": OK_NUMBER, **DATA, "nama": "\x00"}, template=TEMPLATE
        ),
        InvalidMessage,
        "data['nama'] contains a NUL",
        id="notify-nul-data",
    ),
    pytest.param(
        lambda c: c.notify(
            "bulk.send", {"templateName": TEMPLATE, "recipients": [{"whatsapp": "0812-3456-789a", "data": DATA}]}
        ),
        InvalidMessage,
        "#0: '0812-3456-789a' is not a phone number",
        id="notify-bulk-letter-number",
    ),
    pytest.param(
        lambda c: c.notify("invoice.created", {"customer_whatsapp": OK_NUMBER}, template="nope"),
        UnknownTemplate,
        "'nope'",
        id="notify-unknown-tpl",
    ),
    # templates
    pytest.param(lambda c: c.create_template("", "x"), InvalidTemplate, "name", id="tpl-create-no-name"),
    pytest.param(lambda c: c.create_template("t1", ""), InvalidTemplate, "content is empty", id="tpl-create-empty"),
    pytest.param(lambda c: c.create_template("t1", HUGE), InvalidTemplate, "the limit is 4096", id="tpl-create-huge"),
    pytest.param(lambda c: c.create_template("t1", "x", category="spam"), InvalidTemplate, "'spam'", id="tpl-category"),
    pytest.param(
        lambda c: c.create_template("t1", "{{ nama", type="text"),
        InvalidTemplate,
        "syntax error on line 1",
        id="tpl-syntax",
    ),
    pytest.param(lambda c: c.create_template(TEMPLATE, "x"), InvalidTemplate, "already exists", id="tpl-twice"),
    pytest.param(lambda c: c.get_template("nope"), UnknownTemplate, "'nope'", id="tpl-get-unknown"),
    pytest.param(lambda c: c.preview_template("nope", {}), UnknownTemplate, "'nope'", id="tpl-preview-unknown"),
    pytest.param(lambda c: c.preview_template(TEMPLATE, "x"), InvalidTemplate, "got str", id="tpl-preview-str-data"),
    pytest.param(lambda c: c.update_template("nope", content="x"), UnknownTemplate, "'nope'", id="tpl-update-unknown"),
    # status, cancel, retry of a message that does not exist
    pytest.param(lambda c: c.status("msg_nope"), MessageNotFound, "'msg_nope'", id="status-unknown"),
    pytest.param(lambda c: c.cancel("msg_nope"), MessageNotFound, "'msg_nope'", id="cancel-unknown"),
    pytest.param(lambda c: c.retry("msg_nope"), MessageNotFound, "'msg_nope'", id="retry-unknown"),
    # scheduling and notices
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", send_at=dt.datetime(2030, 1, 1, 9, 0)),
        InvalidSchedule,
        "send_at is a naive datetime (2030-01-01T09:00:00)",
        id="naive-send-at",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", send_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        InvalidSchedule,
        "send_at 2000-01-01T00:00:00+00:00 is in the past",
        id="past-send-at",
    ),
    pytest.param(
        lambda c: c.send_bulk([{"whatsapp": OK_NUMBER}], text="x", expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        InvalidSchedule,
        "expires_at 2000-01-01T00:00:00+00:00 is not after now",
        id="bulk-expired",
    ),
    pytest.param(lambda c: c.cancel_pending(""), InvalidSchedule, "ref must be a non-empty string", id="cancel-no-ref"),
    pytest.param(
        lambda c: c.schedule_reminders("INV-1", OK_NUMBER, "2030-01-10", ladder=("H3",)),
        InvalidSchedule,
        "'H3'",
        id="ladder-step",
    ),
    # send(): the status callback
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", callback_url="ftp://billing.example.com/x"),
        InvalidCallbackUrl,
        "callbackUrl (callback_url) must be an http:// or https:// URL, got 'ftp://billing.example.com/x'",
        id="callback-not-http",
    ),
    pytest.param(
        lambda c: c.send(OK_NUMBER, text="x", callback_url="http://169.254.169.254/latest/meta-data"),
        InvalidCallbackUrl,
        "points at a loopback, private or link-local address (169.254.169.254)",
        id="callback-link-local",
    ),
]


@pytest.mark.parametrize(("call", "error", "says"), CLIENT_CASES)
def test_the_thin_client_refuses_bad_input_clearly_and_queues_nothing(
    client_stack: Stack, call: Call, error: type[WaTasksError], says: str
) -> None:
    stack = client_stack
    with pytest.raises(error) as raised:
        call(stack.client)
    assert says in str(raised.value), str(raised.value)
    assert_nothing_queued(stack)


# The public Celery tasks, through the broker to a real worker -----------------------------------

#: (task, kwargs, what the failed record's error says). The key of each record is ``task:<task id>``.
TASK_CASES: list[Any] = [
    pytest.param(
        "wa.send", {"to": 123, "text": "x"}, "invalid_phone_number: phone number must be a string", id="int-to"
    ),
    pytest.param("wa.send", {"to": "abc", "text": "x"}, "invalid_phone_number: 'abc' is not a phone", id="letters-to"),
    pytest.param(
        "wa.send",
        {"to": "+62 812 3456 789a", "text": "x"},
        "invalid_phone_number: '+62 812 3456 789a' is not a phone number: it holds 'a'",
        id="letter-to",
    ),
    pytest.param(
        "wa.send", {"to": "12345", "text": "x"}, "invalid_phone_number: '12345' is not a valid phone", id="short-to"
    ),
    pytest.param(
        "wa.send", {"to": "0812\x003456", "text": "x"}, "invalid_phone_number: '0812\\x003456' is not", id="nul-to"
    ),
    pytest.param(
        "wa.send", {"to": OK_NUMBER, "text": "Halo\x00"}, "invalid_message: text contains a NUL", id="nul-text"
    ),
    pytest.param(
        "wa.send",
        {"to": OK_NUMBER, "template": TEMPLATE, "data": {**DATA, "nama": {"depan": "Bu\x00di"}}},
        "invalid_message: data['nama']['depan'] contains a NUL",
        id="nul-data",
    ),
    pytest.param(
        "wa.send",
        {"to": OK_NUMBER, "text": "x", "idempotency_key": "k\x00"},
        "idempotency_key contains a NUL",
        id="nul-key",
    ),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": "x", "session": "wa\x00"}, "session contains a NUL", id="nul-s"),
    pytest.param("wa.send", {"text": "x"}, "invalid_phone_number: phone number must be a string", id="no-to"),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": ""}, "invalid_message: text is empty", id="empty-text"),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": HUGE}, "the limit is 4096", id="huge-text"),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": ["x"]}, "text must be a string, got list", id="list-text"),
    pytest.param("wa.send", {"to": OK_NUMBER}, "exactly one of text= or template=", id="no-content"),
    pytest.param("wa.send", {"to": OK_NUMBER, "template": "nope"}, "unknown_template: ", id="unknown-tpl"),
    pytest.param("wa.send", {"to": OK_NUMBER, "template": TEMPLATE}, "template_error: ", id="tpl-no-data"),
    pytest.param("wa.send", {"to": OK_NUMBER, "template": TEMPLATE, "data": "x"}, "got str", id="str-data"),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": "x", "priority": 99}, "invalid_priority: ", id="priority-99"),
    pytest.param(
        "wa.send", {"to": OK_NUMBER, "text": "x", "priority": "asap"}, "invalid_priority: ", id="priority-name"
    ),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": "x", "session": "wa-9"}, "unknown_session: ", id="session"),
    pytest.param("wa.send", {"to": OK_NUMBER, "text": "x", "idempotency_key": 5}, "idempotency_key", id="int-key"),
    pytest.param("wa.send", {"to": OK_NUMBER, "txt": "x"}, "unknown argument 'txt'", id="unknown-kwarg"),
    pytest.param(
        "wa.notify", {"event": "nope", "data": {"customer_whatsapp": OK_NUMBER}}, "unknown_event: ", id="event"
    ),
    pytest.param("wa.notify", {"event": "invoice.created", "data": {}}, "missing_recipient: ", id="notify-no-to"),
    pytest.param("wa.notify", {"event": "invoice.created", "data": "x"}, "got str", id="notify-str-data"),
    pytest.param(
        "wa.notify",
        {"event": "invoice.created", "data": {"customer_whatsapp": "abc"}},
        "invalid_phone_number: ",
        id="notify-bad-number",
    ),
    pytest.param(
        "wa.notify",
        {"event": "invoice.created", "data": {"customer_whatsapp": "0812-3456-7890 ext 5"}},
        "invalid_phone_number: '0812-3456-7890 ext 5' is not a phone number",
        id="notify-extension-number",
    ),
    pytest.param(
        "wa.notify",
        {"event": "invoice.created", "data": {"customer_whatsapp": OK_NUMBER, "customer_name": "\x00"}},
        "invalid_message: data['customer_name'] contains a NUL",
        id="notify-nul-data",
    ),
    pytest.param(
        "wa.notify",
        {"event": "bulk.send", "data": {"templateName": TEMPLATE, "recipients": [{"whatsapp": "0812 3456 789x"}]}},
        "#0: '0812 3456 789x' is not a phone number",
        id="notify-bulk-letter-number",
    ),
    pytest.param(
        "wa.notify",
        {"event": "invoice.created", "data": {"customer_whatsapp": OK_NUMBER}},
        "template_error: ",
        id="notify-missing-data",
    ),
    pytest.param("wa.notify", {"event": "invoice.created", "dat": {}}, "unknown argument 'dat'", id="notify-kwarg"),
    pytest.param(
        "wa.send",
        {"to": OK_NUMBER, "text": "x", "send_at": "2030-01-01T09:00:00"},
        "invalid_schedule: send_at is a naive datetime",
        id="naive-send-at",
    ),
    pytest.param(
        "wa.notify",
        {
            "event": "payment.completed",
            "data": {"customer_whatsapp": OK_NUMBER},
            "expires_at": "2000-01-01T00:00:00+07:00",
        },
        "invalid_schedule: expires_at 1999-12-31T17:00:00+00:00 is not after now",
        id="notify-expired",
    ),
    pytest.param(
        "wa.send",
        {"to": OK_NUMBER, "text": "x", "callback_url": "javascript:alert(1)"},
        "invalid_callback_url: callbackUrl (callback_url) must be an http:// or https:// URL, got 'javascript:",
        id="callback-url",
    ),
]


def test_the_public_tasks_record_each_bad_request_as_a_failed_message_and_send_nothing(
    stack_with_template: Stack,
) -> None:
    # Given a running worker and session host, with a connected session that would send anything
    stack = stack_with_template
    stack.client.install_default_templates()
    stack.start()
    stack.wait_connected("wa-1")

    # When every bad request is sent as billing code would, without importing wa_tasks
    sent = {}
    for case in TASK_CASES:
        task, kwargs, says = case.values
        task_id = str(uuid.uuid4())
        stack.app.send_task(task, kwargs=kwargs, task_id=task_id)
        sent[case.id] = (f"task:{task_id}", says)

    # Then each becomes one failed message whose error says what was wrong
    deadline = time.monotonic() + 60
    errors: dict[str, str | None] = {}
    while time.monotonic() < deadline and len(errors) < len(sent):
        with stack.db() as db:
            found = dict(db.execute(select(Message.idempotency_key, Message.error_message)).all())
        errors = {case: found[key] for case, (key, _) in sent.items() if key in found}
        time.sleep(0.2)
    missing = sorted(set(sent) - set(errors))
    assert not missing, f"no record for {missing}\n{stack.logs()}"
    wrong = {case: errors[case] for case, (_, says) in sent.items() if says not in (errors[case] or "")}
    assert not wrong, wrong

    # And nothing was queued or sent
    time.sleep(1.0)  # a dispatch that slipped through would reach the session in this time
    assert_nothing_queued(stack, refused=len(TASK_CASES))
    worker_log = (stack.logdir / "worker.log").read_text()
    assert "Traceback" not in worker_log

    # And the worker's log lines mask the refused numbers that the stored errors quote
    for raw in ("+62 812 3456 789a", "0812-3456-7890 ext 5", "0812 3456 789x"):
        assert raw not in worker_log
        assert f"{mask(raw)!r} is not a phone number" in worker_log, worker_log


# The command line -------------------------------------------------------------------------------

#: (arguments after ``wa-tasks``, what the error says). Each must exit non-zero without a traceback.
CLI_CASES: list[Any] = [
    pytest.param(["send", "abc", "--text", "x"], "'abc' is not a phone number", id="send-bad-number"),
    pytest.param(["send", "12345", "--text", "x"], "'12345' is not a valid phone number", id="send-short-number"),
    pytest.param(
        ["send", "0812-3456-789a", "--text", "x"], "'0812-3456-789a' is not a phone number", id="send-letter-number"
    ),
    pytest.param(["send", "0812-3456-7890 ext 5", "--text", "x"], "it holds 'e'", id="send-extension-number"),
    pytest.param(
        [
            "send",
            OK_NUMBER,
            "--template",
            TEMPLATE,
            "--data",
            '{"nama": "B\\u0000", "jumlah": "1", "jatuh_tempo": "x"}',
        ],
        "data['nama'] contains a NUL",
        id="send-nul-data",
    ),
    pytest.param(["send", OK_NUMBER], "give exactly one of text= or template=", id="send-no-content"),
    pytest.param(["send", OK_NUMBER, "--text", ""], "text is empty", id="send-empty-text"),
    pytest.param(["send", OK_NUMBER, "--text", HUGE], "the limit is 4096", id="send-huge-text"),
    pytest.param(["send", OK_NUMBER, "--template", "nope"], "unknown template 'nope'", id="send-unknown-tpl"),
    pytest.param(["send", OK_NUMBER, "--template", TEMPLATE], "needs data for: jatuh_tempo", id="send-no-data"),
    pytest.param(["send", OK_NUMBER, "--template", TEMPLATE, "--data", "{bad json"], "not valid JSON", id="send-json"),
    pytest.param(["send", OK_NUMBER, "--template", TEMPLATE, "--data", "[1]"], "got list", id="send-json-list"),
    pytest.param(["send", OK_NUMBER, "--text", "x", "--priority", "99"], "0..9", id="send-priority-99"),
    pytest.param(["send", OK_NUMBER, "--text", "x", "--priority", "asap"], "'asap'", id="send-priority-name"),
    pytest.param(["send", OK_NUMBER, "--text", "x", "--priority", "-1"], "0..9", id="send-priority-negative"),
    pytest.param(["send", OK_NUMBER, "--text", "x", "--session", "wa-9"], "unknown session 'wa-9'", id="send-session"),
    pytest.param(["status", "msg_nope"], "no message with id 'msg_nope'", id="status-unknown"),
    pytest.param(["templates", "create", "t1", "--content", ""], "content is empty", id="tpl-create-empty"),
    pytest.param(["templates", "create", "t1"], "give the content with --content", id="tpl-create-no-content"),
    pytest.param(["templates", "create", "bad name!", "--content", "x"], "is not valid", id="tpl-create-bad-name"),
    pytest.param(["templates", "create", "t1", "--content", HUGE], "the limit is 4096", id="tpl-create-huge"),
    pytest.param(["templates", "create", "t1", "--content", "{{ x"], "syntax error", id="tpl-create-syntax"),
    pytest.param(["templates", "create", "t1", "--content", "x", "--category", "spam"], "'spam'", id="tpl-category"),
    pytest.param(["templates", "create", TEMPLATE, "--content", "x"], "already exists", id="tpl-create-twice"),
    pytest.param(["templates", "preview", TEMPLATE, "--data", "{bad json"], "not valid JSON", id="tpl-preview-json"),
    pytest.param(["templates", "preview", TEMPLATE, "--data", '"x"'], "must be a JSON object", id="tpl-preview-str"),
    pytest.param(["templates", "preview", "nope"], "unknown template 'nope'", id="tpl-preview-unknown"),
    pytest.param(["templates", "show", "nope"], "unknown template 'nope'", id="tpl-show-unknown"),
    pytest.param(["sessions", "add", "--device", ""], "device id is empty", id="session-empty-device"),
    pytest.param(["sessions", "add", "--device", "WA-1"], "already exists", id="session-twice"),
    pytest.param(
        ["sessions", "add", "--device", "WA 2", "--id", "bad id!"], "must be 1-63 characters", id="session-id"
    ),
    pytest.param(
        ["sessions", "add", "--device", "WA-2", "--priority", "first"], "'first' is not a valid integer", id="prio"
    ),
    pytest.param(
        ["sessions", "add", "--device", "WA-2", "--pace", "-1"],
        "pace must be from 0 to 3600 seconds",
        id="session-pace",
    ),
    pytest.param(
        ["sessions", "add", "--device", "WA-2", "--transport", "carrier-pigeon"], "'carrier-pigeon'", id="transport"
    ),
    pytest.param(
        ["sessions", "add", "--device", "WA-2", "--option", "latency"], "is not KEY=VALUE", id="session-option"
    ),
    pytest.param(["sessions", "set", "wa-9", "--priority", "1"], "unknown session 'wa-9'", id="set-unknown"),
    pytest.param(["sessions", "set", "wa-1"], "nothing to change", id="set-nothing"),
    pytest.param(["sessions", "set", "wa-1", "--priority", "-1"], "priority must be a whole number", id="set-prio"),
    pytest.param(["sessions", "set", "wa-1", "--pace", "9999"], "pace must be from 0 to 3600", id="set-pace"),
    pytest.param(["sessions", "set", "wa-1", "--pace", "2", "--default-pace"], "not both", id="set-pace-and-default"),
    pytest.param(["sessions", "set", "wa-1", "--number-since", "2999-01-01"], "is in the future", id="since-future"),
    pytest.param(
        ["sessions", "set", "wa-1", "--number-since", "2005-06-01"], "before WhatsApp existed", id="since-too-old"
    ),
    pytest.param(["sessions", "set", "wa-1", "--number-since", "15-03-2021"], "'15-03-2021'", id="since-format"),
    pytest.param(
        ["sessions", "set", "wa-1", "--number-since", "2021-03-15", "--new-number"], "not both", id="since-and-new"
    ),
    pytest.param(
        ["sessions", "add", "--device", "WA-2", "--number-since", "2999-01-01"], "is in the future", id="add-since"
    ),
    pytest.param(["send", OK_NUMBER, "--text", "x", "--at", "tomorrow"], "send_at must be an ISO 8601", id="send-at"),
    pytest.param(["notices", "cancel", "--ref", ""], "ref must be a non-empty string", id="notices-no-ref"),
    pytest.param(
        ["send", OK_NUMBER, "--text", "x", "--callback-url", "gopher://billing.example.com/"],
        "callbackUrl (callback_url) must be an http:// or https:// URL, got 'gopher://billing.example.com/'",
        id="send-callback-url",
    ),
]


def run_cli(settings: Settings, args: list[str]) -> tuple[int, str]:
    """``wa-tasks ARGS`` run in this process (``support.cli``) with the ``WA_*`` environment of the
    stack's processes; returns the exit code and what it printed. A child process would pay for
    importing wa_tasks at every case; one case of each command group still runs as a child below."""
    result = invoke(settings_env(settings), args)
    return result.exit_code, result.output


def run_cli_process(settings: Settings, args: list[str]) -> tuple[int, str]:
    """``python -m wa_tasks ARGS`` as a child process; returns the exit code and what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "wa_tasks", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


# The command line goes through the thin client tested above on both databases; SQLite is enough here.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("args", "says"), CLI_CASES)
def test_the_command_line_says_what_was_wrong_exits_non_zero_and_queues_nothing(
    client_stack: Stack, args: list[str], says: str
) -> None:
    stack = client_stack
    code, output = run_cli(stack.settings, args)
    assert code != 0, output
    assert says in output, output
    assert "Traceback" not in output, output
    assert_nothing_queued(stack)


#: One case of each command group, run as the operator runs them: ``python -m wa_tasks`` in a
#: process of its own, so that the in-process runs above stand for the real entry point.
CLI_PROCESS_CASES = [case for case in CLI_CASES if case.id in ("send-bad-number", "tpl-create-twice", "set-pace")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("args", "says"), CLI_PROCESS_CASES)
def test_the_command_line_in_a_process_of_its_own_says_the_same_and_queues_nothing(
    client_stack: Stack, args: list[str], says: str
) -> None:
    stack = client_stack
    code, output = run_cli_process(stack.settings, args)
    assert code != 0, output
    assert says in output, output
    assert "Traceback" not in output, output
    assert_nothing_queued(stack)
    # And the same command run in this process answers the same
    assert run_cli(stack.settings, args) == (code, output)
