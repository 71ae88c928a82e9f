"""Scoped API keys: create (the key is returned once), list, revoke, and look up a request's key.

A ``send`` key may queue messages (the drop-in endpoints and ``POST /send``) and nothing else: it is
the key an operator pastes into a billing app's gateway URL or a RouterOS script, where it ends up
in logs and browser history. The full ``WA_API_KEY`` is a setting, not a row here.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select

from models import ApiKey, utcnow
from models.db import session_scope
from wa_tasks.core.timefmt import iso_or_none
from wa_tasks.errors import InvalidRequest, UnknownApiKey
from wa_tasks.settings import Settings

#: The scopes a key can have.
SCOPES = ("send",)
#: Every key starts with this, so a leaked one is recognisable (and secret scanners can match it).
KEY_PREFIX = "wak_"
#: Keys shown in a list by their first characters (prefix and 4 random ones): enough to tell them apart.
SHOWN = len(KEY_PREFIX) + 4
MAX_NAME = 100


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def view(row: ApiKey) -> dict[str, Any]:
    """A key as the CLI lists it (never the key itself)."""
    return {
        "id": row.id,
        "scope": row.scope,
        "name": row.name,
        "prefix": row.prefix,
        "createdAt": iso_or_none(row.created_at),
        "revokedAt": iso_or_none(row.revoked_at),
    }


def create(settings: Settings, scope: str, name: str | None = None) -> tuple[dict[str, Any], str]:
    """Store a new key with ``scope``; returns its listing and the key itself (shown only now)."""
    if scope not in SCOPES:
        raise InvalidRequest(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")
    if name is not None and (len(name) > MAX_NAME or "\x00" in name):
        raise InvalidRequest(f"name must be at most {MAX_NAME} characters without NUL, got {name[:120]!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id="k" + secrets.token_hex(4), scope=scope, name=name, key_hash=digest(key), prefix=key[:SHOWN])
    with session_scope(settings.database) as db:
        db.add(row)
        db.flush()
        return view(row), key


def list_keys(settings: Settings) -> list[dict[str, Any]]:
    with session_scope(settings.database) as db:
        return [view(row) for row in db.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))]


def revoke(settings: Settings, key_id: str) -> dict[str, Any]:
    """Revoke a key at once (its next request is refused); revoking twice is not an error."""
    with session_scope(settings.database) as db:
        row = db.get(ApiKey, key_id)
        if row is None:
            raise UnknownApiKey(f"no API key with id {key_id[:100]!r} (see `wa-tasks keys api list`)")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return view(row)


def identify(settings: Settings, key: str) -> tuple[str, str] | None:
    """The id and scope of ``key`` if it is a stored key that is not revoked; None otherwise."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    with session_scope(settings.database) as db:
        row = db.scalar(select(ApiKey).where(ApiKey.key_hash == digest(key)))
        if row is None or row.revoked_at is not None:
            return None
        return row.id, row.scope


def scope_of(settings: Settings, key: str) -> str | None:
    """The scope of ``key`` if it is a stored key that is not revoked; None otherwise."""
    found = identify(settings, key)
    return None if found is None else found[1]
