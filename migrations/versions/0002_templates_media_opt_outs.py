"""templates and triggers: media columns on messages, opt-outs, the default templates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Data: installs the default templates of ``wa_tasks/core/default_templates.py`` named in
``INSTALLED_BY_0002`` that are missing (by name; later defaults come with later migrations); an
existing template, edited or not, is never overwritten. The downgrade removes only the defaults
still exactly as shipped, so an operator's edits survive a downgrade and upgrade.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from wa_tasks.core.default_templates import DEFAULTS, INSTALLED_BY_0002

revision = "0002"
down_revision = "0001"
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
    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("media_data", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("media_mimetype", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("media_filename", sa.String(length=255), nullable=True))

    op.create_table(
        "whatsapp_opt_outs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("keyword", sa.String(length=50), nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=True),
        sa.Column("wa_message_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_opt_outs")),
        sa.UniqueConstraint("number", name=op.f("uq_whatsapp_opt_outs_number")),
    )

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
        for t in (DEFAULTS[name] for name in INSTALLED_BY_0002)
        if t.name not in present
    ]
    if missing:
        op.bulk_insert(_templates, missing)


def downgrade() -> None:
    bind = op.get_bind()
    for t in (DEFAULTS[name] for name in INSTALLED_BY_0002):
        bind.execute(sa.delete(_templates).where(_templates.c.name == t.name, _templates.c.content == t.content))

    op.drop_table("whatsapp_opt_outs")

    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.drop_column("media_filename")
        batch_op.drop_column("media_mimetype")
        batch_op.drop_column("media_data")
        batch_op.drop_column("media_url")
