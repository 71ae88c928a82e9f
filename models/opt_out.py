"""Customers who asked for no more promotions by replying an opt-out word (STOP, BERHENTI, ...).

One row per number. Only ``promotion``-category templates are refused for these numbers;
transactional messages (invoices, payment confirmations, expiry warnings) still go.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class OptOut(Base):
    __tablename__ = "whatsapp_opt_outs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The customer, E.164 digits without "+" (``6281234567890``), as ``Message.to_number``.
    number: Mapped[str] = mapped_column(String(20), unique=True)
    #: What the customer wrote (e.g. "STOP"), trimmed.
    keyword: Mapped[str] = mapped_column(String(50))
    #: The session that received the reply, and WhatsApp's id of the reply (for an audit).
    session_id: Mapped[str | None] = mapped_column(String(100))
    wa_message_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<OptOut {self.number} {self.keyword!r}>"
