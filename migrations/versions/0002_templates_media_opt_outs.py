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

import sqlalchemy as sa
from alembic import op

from models import shipped_templates
from wa_tasks.core.default_templates import DEFAULTS, INSTALLED_BY_0002

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


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

    shipped_templates.install_missing(op.get_bind(), [DEFAULTS[name] for name in INSTALLED_BY_0002])


def downgrade() -> None:
    shipped_templates.remove_unedited(op.get_bind(), [DEFAULTS[name] for name in INSTALLED_BY_0002])

    op.drop_table("whatsapp_opt_outs")

    with op.batch_alter_table("whatsapp_messages", schema=None) as batch_op:
        batch_op.drop_column("media_filename")
        batch_op.drop_column("media_mimetype")
        batch_op.drop_column("media_data")
        batch_op.drop_column("media_url")
