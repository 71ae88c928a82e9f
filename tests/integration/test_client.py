"""The thin client against a real database and Redis (no worker needed): what it stores and
publishes, and that bad input stores and publishes nothing."""

from __future__ import annotations

import json

import pytest
import redis as redis_lib
from sqlalchemy import func, select

from models import Message, Template
from models.db import session_scope
from wa_tasks import errors
from wa_tasks.admin import session_config as manage
from wa_tasks.client import Client
from wa_tasks.core.redis_keys import DEFAULT_QUEUE, URGENT_QUEUE
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


def _queued_dispatches(settings: Settings) -> list[dict[str, object]]:
    """The wa.dispatch tasks waiting on wa.default and wa.urgent, in every priority list."""
    r = redis_lib.Redis.from_url(settings.redis)
    found = []
    for queue in (DEFAULT_QUEUE, URGENT_QUEUE):
        for p in range(10):
            key = queue if p == 0 else f"{queue}:{p}"
            for raw in r.lrange(key, 0, -1):
                message = json.loads(raw)
                headers = message["headers"]
                found.append({"queue": queue, "task": headers["task"], "priority": p, "kwargs": headers["kwargsrepr"]})
    return found


def _rows(settings: Settings) -> int:
    with session_scope(settings.database) as db:
        return int(db.scalar(select(func.count()).select_from(Message)) or 0)


def test_send_stores_a_queued_row_and_publishes_dispatch_with_its_priority(settings: Settings) -> None:
    client = Client(settings)

    message_id = client.send("0812-3456-7890", text="Halo", priority="urgent")

    status = client.status(message_id)
    assert status["status"] == "queued" and status["to"] == "6281234567890"
    assert status["sentAt"] is None and status["attempts"] == 0
    dispatches = _queued_dispatches(settings)
    assert len(dispatches) == 1
    assert dispatches[0]["task"] == "wa.dispatch" and dispatches[0]["priority"] == 0
    # An urgent message is not routed behind bulk dispatches: it has a queue of its own.
    assert dispatches[0]["queue"] == URGENT_QUEUE
    assert message_id in str(dispatches[0]["kwargs"])


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"to": "0812", "text": "Halo"}, errors.InvalidPhoneNumber, "not a valid phone number"),
        ({"to": "halo@g.us", "text": "Halo"}, errors.InvalidPhoneNumber, "not a personal WhatsApp address"),
        ({"to": "", "text": "Halo"}, errors.InvalidPhoneNumber, "empty"),
        ({"to": "081234567890", "text": "   "}, errors.InvalidMessage, "text is empty"),
        ({"to": "081234567890", "text": ""}, errors.InvalidMessage, "text is empty"),
        ({"to": "081234567890"}, errors.InvalidMessage, "exactly one of text= or template="),
        ({"to": "081234567890", "text": "x" * 4097}, errors.InvalidMessage, "4097 characters"),
        ({"to": "081234567890", "text": "Halo", "session": "nope"}, errors.UnknownSession, "unknown session 'nope'"),
        ({"to": "081234567890", "template": "nope"}, errors.UnknownTemplate, "unknown template 'nope'"),
        ({"to": "081234567890", "text": "Halo", "priority": "soon"}, errors.InvalidPriority, "soon"),
        ({"to": "081234567890", "text": "Halo", "priority": 12}, errors.InvalidPriority, "0..9"),
    ],
)
def test_bad_input_raises_a_clear_error_and_stores_and_queues_nothing(
    settings: Settings, kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    client = Client(settings)
    kwargs = dict(kwargs)  # the parameter dict is shared by the SQLite and PostgreSQL runs
    to = kwargs.pop("to")

    with pytest.raises(error) as raised:
        client.send(to, **kwargs)  # type: ignore[arg-type]

    assert words in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert _rows(settings) == 0
    assert _queued_dispatches(settings) == []


def test_a_template_with_missing_data_is_refused_before_anything_is_queued(settings: Settings) -> None:
    with session_scope(settings.database) as db:
        db.add(
            Template(
                name="tagihan",
                content="Halo {{ customer_name }}, tagihan {{ amount }}.",
                variables=["amount", "customer_name"],
            )
        )
    client = Client(settings)

    with pytest.raises(errors.TemplateRenderError, match="amount"):
        client.send("081234567890", template="tagihan", data={"customer_name": "Budi"})
    assert _rows(settings) == 0 and _queued_dispatches(settings) == []

    message_id = client.send("081234567890", template="tagihan", data={"customer_name": "Budi", "amount": "Rp150.000"})
    with session_scope(settings.database) as db:
        assert db.get(Message, message_id).content == "Halo Budi, tagihan Rp150.000."  # type: ignore[union-attr]


def test_a_repeated_idempotency_key_returns_the_first_id_and_publishes_once(settings: Settings) -> None:
    client = Client(settings)

    first = client.send("081234567890", text="Lunas", idempotency_key="pay-1")
    second = client.send("+62 812-3456-7890", text="Lunas lagi", idempotency_key="pay-1")

    assert first == second
    assert _rows(settings) == 1
    assert len(_queued_dispatches(settings)) == 1


def test_an_unreachable_broker_loses_nothing(settings: Settings) -> None:
    # Given a broker that does not answer
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    client = Client(broken)

    # When a message is sent, it is stored as queued for the sweeper to dispatch later
    message_id = client.send("081234567890", text="Halo")

    assert client.status(message_id)["status"] == "queued"


def test_status_of_an_unknown_message_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(errors.MessageNotFound, match="msg_nope"):
        Client(settings).status("msg_nope")


def test_unknown_or_invalid_sessions_are_refused_by_the_session_manager(settings: Settings) -> None:
    manage.add(settings, device_id="WA-1", priority=1)
    with pytest.raises(errors.InvalidRequest, match="already exists"):
        manage.add(settings, device_id="WA-1", priority=2)
    with pytest.raises(errors.InvalidRequest, match="session id"):
        manage.add(settings, device_id="x", session_id="Bad Id!", priority=2)
    with pytest.raises(errors.InvalidRequest, match="unknown simulated transport option"):
        manage.add(settings, device_id="WA-3", priority=3, options={"latency": 5})
    with pytest.raises(errors.UnknownSession):
        manage.remove(settings, "wa-9")
    assert [s["id"] for s in manage.listing(settings)] == ["wa-1"]
