"""session health columns (the health check's results)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_sessions") as batch:
        batch.add_column(sa.Column("health", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("health_detail", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("health_checked_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_probe_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_sessions") as batch:
        batch.drop_column("last_probe_ms")
        batch.drop_column("health_checked_at")
        batch.drop_column("health_detail")
        batch.drop_column("health")
