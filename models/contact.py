"""What the installation knows of a customer's number.

``WhatsAppContact``: whether the number is on WhatsApp, as a session last found it (contact sync).
One row per number; ``checked_at`` is the answer's age. A fresh "not on WhatsApp" makes a send
fail fast (``wa_tasks.pipeline.submit``); stale rows are checked again by ``wa.contacts_refresh``.

``KnownContact``: the session that last sent to the number, kept when retention deletes the
messages that said so (``wa_tasks.ops.retention``), so routing's affinity
(``wa_tasks.pipeline.affinity``) outlives ``WA_RETENTION_MESSAGES_DAYS``.
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


class KnownContact(Base):
    __tablename__ = "whatsapp_known_contacts"

    #: E.164 digits without "+", as ``Message.to_number``.
    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The session of the latest send among the messages retention deleted.
    session_id: Mapped[str] = mapped_column(String(100))
    #: When that send was.
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<KnownContact {self.number} {self.session_id}>"
