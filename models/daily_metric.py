"""One day's figures, stored by the daily roll-up (``wa.metrics_rollup``).

A row per local day (WIB) for all sessions (``session_id`` NULL) and one per session that had any
activity that day. There is no foreign key to the sessions: the history outlives a deleted session.
Re-running the roll-up for a day replaces that day's rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class DailyMetric(Base):
    __tablename__ = "whatsapp_daily_metrics"
    __table_args__ = (Index("ix_whatsapp_daily_metrics_day", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The local day (WIB) the figures are for.
    day: Mapped[dt.date] = mapped_column(Date)
    #: The session, or NULL for the figures of all sessions together.
    session_id: Mapped[str | None] = mapped_column(String(100))
    sent: Mapped[int] = mapped_column(Integer, default=0)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    read: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    #: Messages that expired that day (not sent by their ``expires_at``).
    expired: Mapped[int] = mapped_column(Integer, default=0)
    #: Mean of ``delivered_at - sent_at`` of the messages delivered that day (NULL: none delivered).
    avg_delivery_seconds: Mapped[float | None] = mapped_column(Float)
    #: Sessions that sent at least one message that day (1 or 0 on a session's own row).
    active_sessions: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "session_id": self.session_id,
            "sent": self.sent,
            "delivered": self.delivered,
            "read": self.read,
            "failed": self.failed,
            "expired": self.expired,
            "avg_delivery_seconds": self.avg_delivery_seconds,
            "active_sessions": self.active_sessions,
            "computed_at": self.computed_at.isoformat(),
        }

    def __repr__(self) -> str:
        return f"<DailyMetric {self.day} {self.session_id or 'all'} sent={self.sent}>"
