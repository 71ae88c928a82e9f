"""A message a customer sent to one of the sessions (stored for the operator and handed to a hook)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.encryption import EncryptedText


class IncomingMessage(Base):
    __tablename__ = "whatsapp_incoming"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: WhatsApp's id of the message: a redelivered event is stored once.
    wa_message_id: Mapped[str] = mapped_column(String(100), unique=True)
    session_id: Mapped[str] = mapped_column(String(100), index=True)
    #: The sender as WhatsApp gave it (E.164 digits for a phone number).
    sender: Mapped[str] = mapped_column(String(64), index=True)
    #: Encrypted at rest (models.encryption).
    text: Mapped[str] = mapped_column(EncryptedText)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
