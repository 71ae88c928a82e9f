"""The device store of a neonize session: whatsmeow's tables in a SQLite file of its own (mode 0600)
or a PostgreSQL schema of its own, and the read of which device it holds."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from neonize.proto.Neonize_pb2 import Device

# Device store --------------------------------------------------------------------------------------


def schema_for(session_id: str) -> str:
    """The PostgreSQL schema holding one session's whatsmeow tables (a safe, unique identifier)."""
    slug = re.sub(r"[^a-z0-9_]", "_", session_id.lower())[:40]
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:8]
    return f"neonize_{slug}_{digest}"


def libpq_url(url: str, schema: str | None = None) -> str:
    """A database URL (SQLAlchemy or libpq form) as the Go driver (lib/pq) wants it: scheme
    ``postgres``, ``sslmode=prefer`` unless given (libpq's default; lib/pq's own is ``require``), and
    ``search_path`` set to the session's schema."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("sslmode", "prefer")
    if schema:
        query["search_path"] = schema
    return urlunsplit(("postgres", parts.netloc, parts.path, urlencode(query), ""))


@dataclass(frozen=True)
class NeonizeStore:
    """Where one session's whatsmeow device store lives: a SQLite file, or a schema of a
    PostgreSQL database."""

    #: SQLite: the file path. PostgreSQL: the database URL (SQLAlchemy or libpq form).
    location: str
    #: PostgreSQL only: the session's schema.
    schema: str | None = None

    @classmethod
    def sqlite(cls, path: Path | str) -> NeonizeStore:
        return cls(str(path))

    @classmethod
    def postgres(cls, url: str, session_id: str) -> NeonizeStore:
        return cls(url, schema_for(session_id))

    @classmethod
    def for_session(cls, database: str, data_path: Path, session_id: str) -> NeonizeStore:
        """PostgreSQL when the project's database is PostgreSQL, else ``<data_path>/neonize/<id>.db``."""
        if database.startswith("postgres"):
            return cls.postgres(database, session_id)
        return cls.sqlite(data_path / "neonize" / f"{session_id}.db")

    @property
    def is_postgres(self) -> bool:
        return self.location.startswith("postgres")

    def describe(self) -> str:
        if not self.is_postgres:
            return self.location
        from wa_tasks.settings import mask_url

        return f"{mask_url(self.location)} (schema {self.schema})"

    def prepare(self) -> str:
        """Create the file (mode 0600) or the schema if missing; the name to give ``NewClient``."""
        if self.is_postgres:
            _ensure_schema(self.location, self.schema)
            return libpq_url(self.location, self.schema)
        path = Path(self.location)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        return str(path)


def _ensure_schema(url: str, schema: str | None) -> None:
    if not schema:
        return
    from sqlalchemy import text

    from models.db import create

    engine = create(re.sub(r"^postgres://", "postgresql://", url))
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


class StoreError(Exception):
    """The device store cannot be read."""


def stored_devices(name: str) -> list[Device]:
    """The devices (``Neonize_pb2.Device``) in a store; a database read that never touches a client."""
    from neonize.client import ClientFactory

    try:
        return list(ClientFactory.get_all_devices_from_db(name))
    except ValueError:
        # neonize parses Go's "error: …" answer as a device list and fails; fetch the text itself.
        detail = "unreadable answer"
        try:
            from neonize.client import func_callback_bytes2, gocode, log_whatsmeow

            detail = gocode.GetAllDevices(name.encode(), func_callback_bytes2(log_whatsmeow)).decode()
        except Exception:
            pass
        raise StoreError(f"cannot read the device store: {detail}") from None
