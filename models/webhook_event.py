"""The outbox of status events (the ``whatsapp_webhook_events`` table): one row per status change
of a message and per place the event goes (a webhook URL or a Celery task), written in the same
transaction as the change, and delivered from here by ``wa_tasks.pipeline.webhook_delivery``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow

#: An event's delivery state: waiting (or being retried), received, or given up on.
PENDING_EVENT = "pending"
DELIVERED_EVENT = "delivered"
DEAD_EVENT = "dead"


class WebhookEvent(Base):
    __tablename__ = "whatsapp_webhook_events"
    __table_args__ = (
        # The deliverer reads the due pending events; an event waits for the earlier pending ones of its message.
        Index("ix_whatsapp_webhook_events_state_next", "state", "next_attempt_at"),
        Index("ix_whatsapp_webhook_events_message_state", "message_id", "state"),
        {"sqlite_autoincrement": True},
    )

    #: Increasing: the order of a message's events.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: What the receiver deduplicates by (``evt_<hex>``): the same on every attempt.
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: No foreign key: retention deletes a message's events with it (``wa_tasks.ops.retention``).
    message_id: Mapped[str] = mapped_column(String(40))
    #: The event's status (a message status, or ``ambiguous``).
    status: Mapped[str] = mapped_column(String(20))
    #: Where it goes: an ``http(s)://`` URL, or ``celery:<task>[@<queue>]``.
    target: Mapped[str] = mapped_column(String(2000))
    #: The JSON body, exactly as sent (the signature covers these bytes).
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12), default=PENDING_EVENT)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: After this, a failed attempt makes the event ``dead`` (``WA_WEBHOOK_RETRY_HOURS``; a retry moves it).
    give_up_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<WebhookEvent {self.event_id} {self.status} {self.state}>"
