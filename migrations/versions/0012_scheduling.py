"""scheduled messages, expiry, notices that know their invoice

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

A message may be due later (``send_at``, status ``scheduled``) and expire (``expires_at``, status
``expired``); the releaser reads due messages by ``(status, send_at)`` and expiring ones by
``(status, expires_at)``. ``notice_key`` makes a notice unique (one reminder per invoice and step),
``ref`` groups a customer's notices for cancelling, ``category`` and ``tz`` give the send window.
The daily figures count expired messages.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.add_column(sa.Column("notice_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("ref", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("category", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("tz", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("send_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("expired_at", sa.DateTime(), nullable=True))
        batch.create_unique_constraint("uq_whatsapp_messages_notice_key", ["notice_key"])
    op.create_index("ix_whatsapp_messages_status_send_at", "whatsapp_messages", ["status", "send_at"])
    op.create_index("ix_whatsapp_messages_status_expires_at", "whatsapp_messages", ["status", "expires_at"])
    op.create_index("ix_whatsapp_messages_ref", "whatsapp_messages", ["ref"])
    with op.batch_alter_table("whatsapp_daily_metrics") as batch:
        batch.add_column(sa.Column("expired", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_daily_metrics") as batch:
        batch.drop_column("expired")
    op.drop_index("ix_whatsapp_messages_ref", table_name="whatsapp_messages")
    op.drop_index("ix_whatsapp_messages_status_expires_at", table_name="whatsapp_messages")
    op.drop_index("ix_whatsapp_messages_status_send_at", table_name="whatsapp_messages")
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.drop_constraint("uq_whatsapp_messages_notice_key", type_="unique")
        batch.drop_column("expired_at")
        batch.drop_column("expires_at")
        batch.drop_column("send_at")
        batch.drop_column("tz")
        batch.drop_column("category")
        batch.drop_column("ref")
        batch.drop_column("notice_key")
