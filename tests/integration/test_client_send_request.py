"""``Client.send_request``: a SendRequest built beforehand is queued as ``send`` queues its keywords."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Message
from models.db import session_scope
from wa_tasks.client import Client
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import Settings

pytestmark = pytest.mark.integration


def test_send_request_stores_and_queues_the_message_its_request_describes(settings: Settings) -> None:
    # Given a request built beforehand, as the HTTP API and the command line build theirs
    client = Client(settings)
    request = SendRequest("0812-3456-7890", text="Halo", priority="low", idempotency_key="req-1")

    # When it is sent twice
    first = client.send_request(request)
    again = client.send_request(request)

    # Then one queued message holds what it describes, and the repeat returns its id
    assert again == first
    with session_scope(settings.database) as db:
        rows = db.scalars(select(Message)).all()
        assert [(m.id, m.to_number, m.content, m.priority, m.status) for m in rows] == [
            (first, "6281234567890", "Halo", 8, "queued")
        ]
