"""API keys with a scope, for callers that can only put a key in a URL (billing apps' gateway URLs,
RouterOS ``/tool fetch``), where it leaks into logs and browser history.

Only a SHA-256 hash of each key is stored (keys are long random strings, so a plain hash is enough
and lets a request's key be looked up in one query); the key itself is shown once, at creation.
The full ``WA_API_KEY`` is not stored here: it is a setting and keeps working everywhere.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class ApiKey(Base):
    __tablename__ = "whatsapp_api_keys"

    #: Short id to list and revoke the key by (``k3f9a1c2e``); not secret.
    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    #: What the key may do: ``send`` (the drop-in endpoints and ``POST /send``, nothing else).
    scope: Mapped[str] = mapped_column(String(20))
    #: The operator's note on who uses it (``phpnuxbill``, ``router-1``).
    name: Mapped[str | None] = mapped_column(String(100))
    #: SHA-256 of the key, hex.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's first characters, to recognise it in a list without storing it.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.scope}{' revoked' if self.revoked_at else ''}>"
