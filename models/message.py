"""A message to one recipient and every step of its life (the ``whatsapp_messages`` table)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.encryption import EncryptedJSON, EncryptedText
from models.statuses import MessageStatus


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class Message(Base):
    """One outgoing message. ``id`` is wa-tasks' own id (returned by ``send``); ``wa_message_id``
    is the id WhatsApp gave it, which receipts refer to."""

    __tablename__ = "whatsapp_messages"
    __table_args__ = (
        Index("ix_whatsapp_messages_status_created", "status", "created_at"),
        Index("ix_whatsapp_messages_wa_message_id", "wa_message_id"),
        Index("ix_whatsapp_messages_session_id", "session_id"),
        Index("ix_whatsapp_messages_created_at", "created_at"),
        Index("ix_whatsapp_messages_sent_at", "sent_at"),
        # The releaser reads due scheduled messages by their due time, and the expiry by theirs.
        Index("ix_whatsapp_messages_status_send_at", "status", "send_at"),
        Index("ix_whatsapp_messages_status_expires_at", "status", "expires_at"),
        Index("ix_whatsapp_messages_ref", "ref"),
        # Routing's affinity reads, per recipient, the session of the latest send (pipeline/affinity.py).
        Index("ix_whatsapp_messages_to_number_sent_at", "to_number", "sent_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_message_id)
    #: The session it was routed to (NULL while queued).
    session_id: Mapped[str | None] = mapped_column(
        String(100), ForeignKey("whatsapp_sessions.session_id", ondelete="SET NULL")
    )
    #: A session the caller asked for; routing then uses only that one.
    requested_session: Mapped[str | None] = mapped_column(String(100))
    #: Chosen before the send when the transport can choose it (written with the claim), else
    #: WhatsApp's answer to the send.
    wa_message_id: Mapped[str | None] = mapped_column(String(100))
    #: Hex of the ``messageSecret`` the send carries when the transport cannot choose the id
    #: (neonize): whatsmeow stores the id it generates with it, which a receipt is matched by.
    send_secret: Mapped[str | None] = mapped_column(String(64))
    #: The recipient, E.164 digits without "+" (``6281234567890``); for a refused request, the raw input.
    to_number: Mapped[str] = mapped_column(String(64))
    template_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("whatsapp_templates.id", ondelete="SET NULL"))
    #: text, media, button or list (button and list are sent as their plain-text fallback, in ``content``).
    message_type: Mapped[str] = mapped_column(String(20), default="text")
    #: The text as sent (or the caption); encrypted at rest.
    content: Mapped[str | None] = mapped_column(EncryptedText)
    #: Template data as given by the caller; encrypted at rest.
    data: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    #: A ``media`` message: the image or document, as a URL the session host downloads at send
    #: time or as the bytes themselves; ``content`` is its caption.
    media_url: Mapped[str | None] = mapped_column(Text)
    media_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    media_mimetype: Mapped[str | None] = mapped_column(String(100))
    media_filename: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.QUEUED)
    #: Redis priority 0 (highest) .. 9 (lowest).
    priority: Mapped[int] = mapped_column(Integer, default=5)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    #: At most one message per notice key (``invoice:INV-7:reminder:H-3``): a repeated key returns
    #: the first message's id, whatever became of it.
    notice_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    #: What the message is about (an invoice number): groups a customer's notices for ``cancel_pending``.
    ref: Mapped[str | None] = mapped_column(String(100))
    #: The template's category (notification, reminder, promotion, ...): its send window, and what
    #: ``cancel_pending(categories=...)`` matches. NULL for a plain text: any hour.
    category: Mapped[str | None] = mapped_column(String(50))
    #: The customer's time zone (IANA name) for the send window; NULL: the installation's (``WA_TIMEZONE``).
    tz: Mapped[str | None] = mapped_column(String(64))
    #: Where this message's status events go besides ``WA_STATUS_WEBHOOK_URL`` (``callback_url`` of the request).
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    #: When the message is due: a ``scheduled`` message is queued by the releaser from then on
    #: (NULL: sent at once).
    send_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Not sent by then: ``expired``, never sent late (NULL: no limit).
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    bulk_job_id: Mapped[str | None] = mapped_column(
        String(100), ForeignKey("whatsapp_queue_jobs.job_id", ondelete="SET NULL")
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    #: Send attempts made so far.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)

    #: The customer's email address: where the email fallback sends a message that failed on WhatsApp.
    #: Encrypted at rest.
    email: Mapped[str | None] = mapped_column(EncryptedText)
    #: The email fallback's outcome (``wa_tasks.pipeline.fallback``): NULL (not failed, or not yet
    #: considered), queued, sending, sent, failed (``fallback_error`` says why) or skipped
    #: (``fallback_error``: disabled or no_address).
    fallback_status: Mapped[str | None] = mapped_column(String(20))
    fallback_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    fallback_error: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Last time a ``dispatch`` for it was published; the sweeper republishes stale ones.
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    routed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sending_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: ``receipt``: the host stopped during the send, so WhatsApp's acknowledgement was never
    #: recorded; a delivery or read receipt for ``wa_message_id`` proved the message arrived
    #: (``sent_at`` is then when the send began). NULL: the acknowledgement was recorded.
    confirmed_by: Mapped[str | None] = mapped_column(String(20))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.status}>"
