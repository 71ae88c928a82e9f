"""Install and remove the shipped default templates from migrations (0002, 0010, …).

A migration installs the defaults it names that are missing, by name: an existing template of the
same name, edited or not, is never overwritten. Its downgrade removes only those still exactly as
shipped, so an operator's edits survive a downgrade and upgrade. The table is written through the
columns it has had since 0002, not the current model: a migration must not change with later code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: ``whatsapp_templates`` as the migrations that install defaults write it.
TEMPLATES = sa.table(
    "whatsapp_templates",
    sa.column("name", sa.String),
    sa.column("category", sa.String),
    sa.column("type", sa.String),
    sa.column("content", sa.Text),
    sa.column("variables", sa.JSON),
    sa.column("language", sa.String),
    sa.column("is_active", sa.Boolean),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)


class Shipped(Protocol):
    """A default template as ``wa_tasks/core/default_templates.py`` ships it."""

    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def variables(self) -> Iterable[str]: ...
    @property
    def language(self) -> str: ...


def install_missing(bind: Connection, templates: Iterable[Shipped]) -> int:
    """Insert the ``templates`` whose name is not in the table yet; returns how many."""
    present = set(bind.execute(sa.select(TEMPLATES.c.name)).scalars())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # stored as naive UTC, like models.base.UTCDateTime
    missing = [
        {
            "name": t.name,
            "category": t.category,
            "type": t.type,
            "content": t.content,
            "variables": list(t.variables),
            "language": t.language,
            "is_active": True,
            "created_at": now,
            "updated_at": now,
        }
        for t in templates
        if t.name not in present
    ]
    if missing:
        bind.execute(sa.insert(TEMPLATES), missing)
    return len(missing)


def remove_unedited(bind: Connection, templates: Iterable[Shipped]) -> None:
    """Delete the ``templates`` still exactly as shipped (same name and content)."""
    for t in templates:
        bind.execute(sa.delete(TEMPLATES).where(TEMPLATES.c.name == t.name, TEMPLATES.c.content == t.content))
