"""daily metrics roll-up table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_daily_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("read", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("avg_delivery_seconds", sa.Float(), nullable=True),
        sa.Column("active_sessions", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_daily_metrics")),
    )
    with op.batch_alter_table("whatsapp_daily_metrics") as batch:
        batch.create_index("ix_whatsapp_daily_metrics_day", ["day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_daily_metrics") as batch:
        batch.drop_index("ix_whatsapp_daily_metrics_day")
    op.drop_table("whatsapp_daily_metrics")
