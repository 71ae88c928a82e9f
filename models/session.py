"""A WhatsApp session: one linked device (number) that wa-tasks sends through."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.statuses import SessionStatus


class WhatsAppSession(Base):
    """A configured session. Its ``status`` is the last state a session host reported;
    whether it is usable *now* comes from the live state in Redis (never stale), and which
    session is primary is derived from that, so neither is stored as a flag here."""

    __tablename__ = "whatsapp_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(100), unique=True)
    device_id: Mapped[str] = mapped_column(String(100))
    phone_number: Mapped[str | None] = mapped_column(String(20))
    #: ``simulated`` or ``neonize``.
    transport: Mapped[str] = mapped_column(String(20), default="simulated")
    #: Transport-specific options (simulated: latency_ms, failure_rate, auto_pair, ...).
    transport_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=SessionStatus.DISCONNECTED)
    #: Lower number = preferred. The connected session with the lowest number is the primary.
    priority: Mapped[int] = mapped_column(Integer, default=999)
    #: Seconds between sends on this session; NULL = the global ``WA_PACE_SECONDS``.
    pace_seconds: Mapped[float | None] = mapped_column(Float)
    #: The day the number started using WhatsApp: its age sets ban safety's warm-up caps. NULL: the
    #: day the session was added (``created_at``), i.e. a new number.
    number_since: Mapped[dt.date | None] = mapped_column(Date)
    message_count: Mapped[int] = mapped_column(BigInteger, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_activity: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    banned_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Last health check (beat, every 30 s): ok, slow, failing, idle or offline, and why.
    health: Mapped[str | None] = mapped_column(String(20))
    health_detail: Mapped[str | None] = mapped_column(String(500))
    health_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Round trip of the last probe (ms), which messages nobody.
    last_probe_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<WhatsAppSession {self.session_id} prio={self.priority} {self.status}>"
