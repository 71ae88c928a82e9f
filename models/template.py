"""A message template: its text with ``{{variables}}``, its category and type, stored by name."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class Template(Base):
    __tablename__ = "whatsapp_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: notification, reminder or promotion.
    category: Mapped[str] = mapped_column(String(50), default="notification")
    #: text, media, button or list.
    type: Mapped[str] = mapped_column(String(20), default="text")
    content: Mapped[str] = mapped_column(Text)
    #: Variable names used by ``content``, extracted when it is saved.
    variables: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(5), default="id")
    #: Its own send window (``"08:00-20:00"``, ranges comma-separated, or ``"always"``), in preference
    #: to its category's (``wa_tasks/core/windows.py``); NULL: the category's.
    send_window: Mapped[str | None] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
