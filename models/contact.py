"""Whether a number is on WhatsApp, as a session last found it (contact sync).

One row per number; ``checked_at`` is the answer's age. A fresh "not on WhatsApp" makes a send
fail fast (``wa_tasks.pipeline.submit``); stale rows are checked again by ``wa.contacts_refresh``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class WhatsAppContact(Base):
    __tablename__ = "whatsapp_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: E.164 digits without "+" (``6281234567890``), as ``Message.to_number``.
    number: Mapped[str] = mapped_column(String(20), unique=True)
    on_whatsapp: Mapped[bool] = mapped_column(Boolean)
    #: When WhatsApp answered; the answer is trusted for ``WA_CONTACT_MAX_AGE_DAYS``.
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    #: The session that asked.
    session_id: Mapped[str | None] = mapped_column(String(100))

    def __repr__(self) -> str:
        return f"<WhatsAppContact {self.number} {self.on_whatsapp}>"
