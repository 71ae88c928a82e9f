"""routing affinity: the latest send to a recipient, by index, and kept past retention

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

Routing prefers the session that last sent to or heard from a recipient
(``wa_tasks/pipeline/affinity.py``); it reads the latest send per recipient through
``(to_number, sent_at)``. Incoming messages already have an index on ``sender``. Retention keeps
the latest send per number of the messages it deletes in ``whatsapp_known_contacts``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_whatsapp_messages_to_number_sent_at", "whatsapp_messages", ["to_number", "sent_at"])
    op.create_table(
        "whatsapp_known_contacts",
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=100), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_known_contacts")
    op.drop_index("ix_whatsapp_messages_to_number_sent_at", table_name="whatsapp_messages")
