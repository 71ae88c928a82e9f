"""How wa-tasks writes a point in time for callers: ISO 8601 in UTC with a ``Z``."""

from __future__ import annotations

import datetime as dt


def iso(value: dt.datetime) -> str:
    """``value`` in UTC, e.g. ``2026-01-31T09:00:00.123456Z`` (a naive value is taken as UTC)."""
    value = value.astimezone(dt.UTC) if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def iso_or_none(value: dt.datetime | None) -> str | None:
    """:func:`iso`, or None for no time."""
    return iso(value) if value is not None else None


def iso_timestamp(timestamp: float) -> str:
    """A unix time, written as :func:`iso`."""
    return iso(dt.datetime.fromtimestamp(timestamp, dt.UTC))
