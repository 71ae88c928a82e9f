"""Each way a delivery ends writes its outcome before it publishes what must follow: a rerouted or
retried message is ``queued`` when its ``dispatch`` is published (routing moves only ``queued``
rows), a failed one is ``failed`` when its email fallback is published, and what email must not
send (an ambiguous send, the recipient's hourly cap) publishes nothing. Seen from the broker's side:
every publish of the session host's ``Deliverer`` reads the row at that moment, then goes to Redis."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models import Message
from models.db import session_scope
from sessions_host.delivery import Deliverer, Outcome
from sessions_host.safety import Decision
from sessions_host.transports.base import (
    AmbiguousSendError,
    RecipientError,
    SendResult,
    SendTag,
    SessionError,
    TransientSendError,
)
from wa_tasks.admin import session_config as manage
from wa_tasks.core import task_names
from wa_tasks.infra.celery_app import app_for
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


class _Transport:
    def __init__(self, connected: bool, error: Exception | None) -> None:
        self.connected = connected
        self.error = error

    def new_tag(self) -> SendTag:
        return SendTag()

    def send_text(self, to_jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        if self.error is not None:
            raise self.error
        return SendResult(wa_message_id="WA-1")


class _Gate:
    def __init__(self, over_cap: bool) -> None:
        self.over_cap = over_cap

    def recipient_wait(self, number: str, message_id: str) -> float:
        return 3600.0 if self.over_cap else 0.0

    def take_slot(self) -> bool:
        return True

    def safety_check(self, number: str) -> tuple[Decision, bool]:
        return Decision(True), False

    def safety_sent(self, number: str, is_new: bool) -> None:
        pass

    def restricted(self, reason: str, until: float | None) -> None:
        pass


#: What a publish saw: the task, the message's status then, "later" for a countdown, the excluded sessions.
REROUTE = [(task_names.DISPATCH, "queued", None, ["wa-1"])]
RETRY = [(task_names.DISPATCH, "queued", "later", None)]
EMAIL = [(task_names.EMAIL_FALLBACK, "failed", None, None)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("connected", "error", "over_cap", "max_attempts", "outcome", "published"),
    [
        (False, None, False, 3, Outcome.REROUTED, REROUTE),
        (True, SessionError("logged out"), False, 3, Outcome.REROUTED, REROUTE),
        (True, TransientSendError("timeout"), False, 3, Outcome.RETRY, RETRY),
        (True, TransientSendError("timeout"), False, 1, Outcome.FAILED, EMAIL),
        (True, RecipientError("not on WhatsApp"), False, 3, Outcome.FAILED, EMAIL),
        (True, AmbiguousSendError("lost"), False, 3, Outcome.AMBIGUOUS, []),
        (True, None, True, 3, Outcome.FAILED, []),
        (True, None, False, 3, Outcome.SENT, []),
    ],
    ids=["not-connected", "session-error", "transient", "last-attempt", "recipient", "ambiguous", "capped", "sent"],
)
def test_each_outcome_is_written_before_what_follows_it_is_published(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    connected: bool,
    error: Exception | None,
    over_cap: bool,
    max_attempts: int,
    outcome: Outcome,
    published: list[tuple[str, str, str | None, list[str] | None]],
) -> None:
    # Given a message with an email address routed to wa-1, the email fallback on, and a broker
    # whose every publish first reads the message as the database has it then
    settings = settings.model_copy(update={"email_fallback": True})
    manage.add(settings, device_id="WA-1", session_id="wa-1", priority=1)
    with session_scope(settings.database) as db:
        message = Message(
            to_number="6281200000001",
            content="Tagihan",
            status="routed",
            session_id="wa-1",
            email="budi@example.com",
            max_attempts=max_attempts,
        )
        db.add(message)
        db.flush()
        message_id = message.id
    app = app_for(settings)
    seen: list[tuple[str, str, str | None, list[str] | None]] = []
    real_send_task = app.send_task

    def send_task(name: str, *args: Any, **options: Any) -> Any:
        with session_scope(settings.database) as db:
            status = db.scalar(select(Message.status).where(Message.id == message_id))
        later = "later" if options.get("countdown") else None
        seen.append((name, str(status), later, (options.get("kwargs") or {}).get("exclude")))
        return real_send_task(name, *args, **options)

    monkeypatch.setattr(app, "send_task", send_task)
    deliverer = Deliverer(app, settings, "wa-1", _Transport(connected, error), _Gate(over_cap))  # type: ignore[arg-type]

    # When it is delivered
    result = deliverer.deliver(message_id)

    # Then it ends in its one outcome, and each publish saw that outcome already committed
    assert result == outcome
    assert seen == published
