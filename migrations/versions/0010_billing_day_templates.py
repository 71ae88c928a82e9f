"""the billing day's templates: due-day and overdue reminders, isolir and reactivation notices

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Data only: installs the templates of ``INSTALLED_BY_0010`` in ``wa_tasks/core/default_templates.py``
that are missing (by name), as 0002 did for the first five; an existing template of the same name,
edited or not, is never overwritten. The downgrade removes only those still exactly as shipped.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from wa_tasks.core.default_templates import DEFAULTS, INSTALLED_BY_0010

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The templates table as of this revision (not the current model: a migration must not change
# with later code).
_templates = sa.table(
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


def upgrade() -> None:
    bind = op.get_bind()
    present = set(bind.execute(sa.select(_templates.c.name)).scalars())
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
        for t in (DEFAULTS[name] for name in INSTALLED_BY_0010)
        if t.name not in present
    ]
    if missing:
        op.bulk_insert(_templates, missing)


def downgrade() -> None:
    bind = op.get_bind()
    for t in (DEFAULTS[name] for name in INSTALLED_BY_0010):
        bind.execute(sa.delete(_templates).where(_templates.c.name == t.name, _templates.c.content == t.content))
