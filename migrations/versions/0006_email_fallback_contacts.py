"""email fallback columns on messages, whatsapp_contacts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.add_column(sa.Column("email", sa.Text(), nullable=True))  # encrypted at rest
        batch.add_column(sa.Column("fallback_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("fallback_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("fallback_error", sa.Text(), nullable=True))
    op.create_table(
        "whatsapp_contacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("on_whatsapp", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_contacts")),
        sa.UniqueConstraint("number", name=op.f("uq_whatsapp_contacts_number")),
    )
    with op.batch_alter_table("whatsapp_contacts") as batch:
        batch.create_index(batch.f("ix_whatsapp_contacts_checked_at"), ["checked_at"], unique=False)


def downgrade() -> None:
    op.drop_table("whatsapp_contacts")
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.drop_column("fallback_error")
        batch.drop_column("fallback_at")
        batch.drop_column("fallback_status")
        batch.drop_column("email")
