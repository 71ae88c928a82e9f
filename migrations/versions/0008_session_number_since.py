"""a session's number age: the day the number started using WhatsApp

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Ban safety's warm-up caps grow with a number's age. Without this column the age counts from the
day the session was added, so a number used on WhatsApp for years, linked to a new installation, is
capped like a new one (20 sends a day). ``number_since`` lets the operator say how old the number is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_sessions") as batch:
        batch.add_column(sa.Column("number_since", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_sessions") as batch:
        batch.drop_column("number_since")
