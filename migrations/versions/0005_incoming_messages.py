"""incoming messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_incoming",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("wa_message_id", sa.String(length=100), nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_incoming")),
        sa.UniqueConstraint("wa_message_id", name=op.f("uq_whatsapp_incoming_wa_message_id")),
    )
    with op.batch_alter_table("whatsapp_incoming") as batch:
        batch.create_index(batch.f("ix_whatsapp_incoming_session_id"), ["session_id"], unique=False)
        batch.create_index(batch.f("ix_whatsapp_incoming_sender"), ["sender"], unique=False)


def downgrade() -> None:
    op.drop_table("whatsapp_incoming")
