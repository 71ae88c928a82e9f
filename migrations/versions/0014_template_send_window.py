"""a template's own send window

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

``send_window`` (``"08:00-20:00"``, ranges comma-separated, or ``"always"``) is used instead of the
template category's window (``WA_WINDOW_*``) at release and at the session host's claim; NULL
keeps the category's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_templates") as batch:
        batch.add_column(sa.Column("send_window", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_templates") as batch:
        batch.drop_column("send_window")
