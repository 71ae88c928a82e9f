"""SendRequest, the one description of a message request that every send entry point builds: its
own checks (those that need no settings or database), and that the entry points carry its fields."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from wa_tasks import client, tasks
from wa_tasks.client import Client
from wa_tasks.errors import InvalidMessage, InvalidPriority
from wa_tasks.pipeline.media import Media
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.web.schemas import SendBody

OK = "0812-3456-7890"


@pytest.mark.parametrize(
    ("fields", "error", "says"),
    [
        ({"text": ""}, InvalidMessage, "text is empty"),
        ({"text": " \n"}, InvalidMessage, "text is empty"),
        ({"text": 42}, InvalidMessage, "text must be a string, got int"),
        ({"text": "x" * 4097}, InvalidMessage, "text is 4097 characters; the limit is 4096"),
        ({}, InvalidMessage, "give exactly one of text= or template="),
        ({"text": "x", "template": "t"}, InvalidMessage, "give exactly one of text= or template="),
        ({"template": " "}, InvalidMessage, "template must be a template name"),
        ({"template": "t", "data": [1]}, InvalidMessage, "data must be a mapping of template variables, got list"),
        ({"template": "t", "data": {"a": [{"b": "\x00"}]}}, InvalidMessage, "data['a'][0]['b'] contains a NUL"),
        ({"text": "x", "priority": "asap"}, InvalidPriority, "'asap'"),
        ({"text": "x", "priority": 10}, InvalidPriority, "0..9"),
        ({"text": "x", "idempotency_key": "k" * 201}, InvalidMessage, "at most 200 characters"),
        ({"text": "x", "idempotency_key": 7}, InvalidMessage, "idempotency_key must be a non-empty string"),
        ({"text": "x", "session": "wa\x00"}, InvalidMessage, "session contains a NUL"),
        (
            {"text": "x", "email": "budi"},
            InvalidMessage,
            "email must be an email address such as budi@example.com, got 'budi'",
        ),
        ({"template": "t", "data": {"customer_email": "x@"}}, InvalidMessage, "got 'x@'"),
        ({"media": Media(url="https://example.com/a.png")}, InvalidMessage, "a media message needs a caption="),
        (
            {"text": "x", "media": Media(url="https://example.com/a.png", filename="a\x00.png")},
            InvalidMessage,
            "media['filename'] contains a NUL",
        ),
    ],
)
def test_building_a_request_refuses_bad_input_naming_it(fields: dict[str, object], error: type, says: str) -> None:
    with pytest.raises(error) as raised:
        SendRequest(OK, **fields)  # type: ignore[arg-type]
    assert says in str(raised.value)


def test_a_valid_request_keeps_what_was_given_and_resolves_its_priority_and_fallback_address() -> None:
    request = SendRequest(OK, template="tagihan", data={"customer_email": " budi@example.com "}, priority="urgent")

    assert (request.to, request.template, request.text) == (OK, "tagihan", None)
    assert request.step == 0
    assert request.fallback_email() == "budi@example.com"
    assert SendRequest(
        OK, text="x", email="ani@example.com", data={"customer_email": "budi@example.com"}
    ).fallback_email() == ("ani@example.com")
    assert SendRequest(OK, text="x").step == 5  # normal


def test_a_request_is_a_value() -> None:
    request = SendRequest(OK, text="Halo")

    assert request == SendRequest(OK, text="Halo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.text = "other"  # type: ignore[misc]


#: SendRequest's fields that the keyword entry points take by the same name (media travels as
#: send_media's url or bytes, which no task kwarg or JSON body carries).
KEYWORD_FIELDS = [f.name for f in dataclasses.fields(SendRequest) if f.name != "media"]


def test_client_send_and_the_wa_send_task_take_every_field_of_a_request() -> None:
    assert list(inspect.signature(Client.send).parameters)[1:] == KEYWORD_FIELDS
    assert list(tasks.SEND_ARGUMENTS) == KEYWORD_FIELDS
    assert list(inspect.signature(tasks.send.run).parameters)[:-1] == KEYWORD_FIELDS


def test_the_api_send_body_has_a_field_for_every_field_of_a_request() -> None:
    # The body's camelCase names (idempotencyKey, sessionId) for the request's fields.
    body = {
        "idempotencyKey": "idempotency_key",
        "sessionId": "session",
        "sendAt": "send_at",
        "expiresAt": "expires_at",
        "noticeKey": "notice_key",
        "callbackUrl": "callback_url",
    }
    assert sorted(body.get(name, name) for name in SendBody.model_fields) == sorted(KEYWORD_FIELDS)


def test_the_module_functions_are_the_default_clients_methods_with_their_signatures() -> None:
    for name in ("send", "send_request", "send_media", "notify", "send_bulk", "status", "preview_template"):
        method = getattr(Client, name)
        function = getattr(client, name)
        assert list(inspect.signature(function).parameters) == list(inspect.signature(method).parameters)[1:]
        assert function.__doc__ == method.__doc__
